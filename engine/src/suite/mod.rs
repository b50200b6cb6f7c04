//! STUB (replaced by the suite branch).
use std::collections::BTreeMap;
use std::path::Path;
#[derive(Debug, thiserror::Error)]
#[error("suite error")]
pub struct SuiteError;
#[derive(Debug, Clone)]
pub struct ScenarioSpec;
pub fn load_dir(_dir: &Path) -> Result<Vec<ScenarioSpec>, SuiteError> {
    Ok(vec![])
}
pub fn load_file(_path: &Path) -> Result<ScenarioSpec, SuiteError> {
    Err(SuiteError)
}
impl ScenarioSpec {
    pub fn generate(&self) -> Scenario {
        unimplemented!()
    }
}
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub start: i64,
    pub evaluate_from: i64,
    pub end: i64,
    pub series: Vec<(BTreeMap<String, String>, Vec<(i64, f64)>)>,
    pub incidents: Vec<Truth>,
    pub traps: Vec<String>,
}
#[derive(Debug, Clone)]
pub struct Truth {
    pub kind: String,
    pub alert: String,
    pub labels: BTreeMap<String, String>,
    pub onset: i64,
    pub end: i64,
    pub static_expr: Option<String>,
    pub static_for: i64,
    pub holds_from: Option<i64>,
    pub abrupt: bool,
}
