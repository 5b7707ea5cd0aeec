//! Text a server sent, made safe to put into an error, a log line or a
//! table. A hostile or broken server can answer with terminal escapes (ESC
//! sequences that recolour, move the cursor or retitle the terminal), line
//! breaks that forge a second log line, or bidirectional overrides that
//! reorder what is shown. Every place where server text becomes part of an
//! error message passes it through [`sanitize`] once, at that boundary.
//!
//! Decisions: line breaks and tabs (CR, LF, TAB, VT, FF, NEL, U+2028,
//! U+2029) become one space each, so a multi-line HTML error page stays
//! readable on one line; every other control character (C0, DEL, C1) and
//! the bidirectional controls become U+FFFD, so that the reader sees that
//! something was removed (`ESC[31m` shows as `�[31m`, inert).

/// `text` without control characters: line breaks and tabs as spaces,
/// the rest as U+FFFD. Borrows when there is nothing to replace.
pub fn sanitize(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(needs_replacing) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars()
            .map(|c| {
                if !needs_replacing(c) {
                    c
                } else if is_break(c) {
                    ' '
                } else {
                    char::REPLACEMENT_CHARACTER
                }
            })
            .collect(),
    )
}

/// [`sanitize`] into an owned string.
pub fn sanitized(text: &str) -> String {
    sanitize(text).into_owned()
}

fn is_break(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

fn needs_replacing(c: char) -> bool {
    c.is_control() // C0, DEL and C1
        || is_break(c)
        // Bidirectional embeddings, overrides and isolates.
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_line_breaks_cannot_forge_a_line_or_drive_a_terminal() {
        let hostile =
            "Bad\x1b[2J\x1b]0;owned\x07\r\n2026-12-04T00:00:00Z  INFO forged\u{9b}31m\u{7f}";
        let clean = sanitize(hostile);
        assert!(!clean.chars().any(|c| c.is_control()), "{clean:?}");
        assert_eq!(
            clean,
            "Bad\u{fffd}[2J\u{fffd}]0;owned\u{fffd}  2026-12-04T00:00:00Z  INFO forged\u{fffd}31m\u{fffd}"
        );
    }

    #[test]
    fn unicode_line_separators_and_bidi_overrides_are_replaced() {
        assert_eq!(
            sanitize("a\u{2028}b\u{2029}c\u{85}d\u{202E}e\u{2066}f"),
            "a b c d\u{fffd}e\u{fffd}f"
        );
    }

    #[test]
    fn ordinary_text_is_borrowed_unchanged() {
        let text = "ErrorMailRecipientNotFound: Der Empfänger wurde nicht gefunden. 😀";
        assert!(matches!(sanitize(text), std::borrow::Cow::Borrowed(t) if t == text));
    }
}
