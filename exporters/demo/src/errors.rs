//! Error text with its causes: client libraries often keep the useful part
//! ("Connection refused") in `source()`, not in `Display`.

use std::error::Error;

/// `error: cause: cause…`, skipping causes already in the text.
pub fn chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("error connecting to server")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn causes_are_appended_once() {
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused",
        ));
        assert_eq!(chain(&e), "error connecting to server: Connection refused");
        let io = std::io::Error::other("plain");
        assert_eq!(chain(&io), "plain");
    }
}
