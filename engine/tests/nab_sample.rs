//! The quality bar on the public NAB sample in ../shared/data/nab, measured as
//! `prognos eval nab --split report` measures it: the deployed detector on the
//! held-out half (nothing is tuned on it), detections being an alert's firing
//! transitions. It must keep NAB standard ≥ 70 and reward-low-FP ≥ 60.

use std::path::Path;

use prognos::cli::EvalNabArgs;

#[test]
fn nab_sample_meets_the_published_bar() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/nab");
    assert!(
        root.exists(),
        "the NAB sample is expected at {}",
        root.display()
    );
    let run = prognos::commands::eval_nab(&EvalNabArgs {
        data: root.join("data"),
        labels: root.join("labels/combined_windows.json"),
        verbose: false,
        scores_dir: None,
        split: prognos::nab_corpus::NabSplit::Report,
        keep_firing_for: prognos::commands::NAB_KEEP_FIRING_ROWS,
    })
    .expect("scores the sample");
    let by = |name: &str| {
        run.results
            .iter()
            .find(|r| r.profile == name)
            .map(|r| r.normalized)
            .expect("profile")
    };
    assert_eq!(run.files.len(), 13);
    assert!(by("standard") >= 70.0, "{}", run.report(false));
    assert!(by("reward_low_FP_rate") >= 60.0, "{}", run.report(false));
}
