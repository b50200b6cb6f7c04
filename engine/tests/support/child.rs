//! `prognos run` as a child process of a test, and polling for what it
//! should do.

use std::time::Duration;

/// A child process (`prognos run`), killed and reaped when dropped, so a
/// failing test leaves nothing running.
#[derive(Debug)]
pub struct Prognos(pub std::process::Child);

impl Drop for Prognos {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `f` every 250 ms for up to `secs` seconds until it holds.
pub async fn eventually(secs: u64, mut f: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..secs * 4 {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}
