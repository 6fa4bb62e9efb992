//! Text people type, checked the same way wherever it is shown to others.
//!
//! Some Unicode characters draw nothing but change what is seen: bidirectional controls
//! (U+202A–U+202E, U+2066–U+2069, the marks U+200E/U+200F/U+061C) reorder the text around them,
//! so `gnp.exe` can read as `exe.png` and a username in a comment can appear to say something
//! else; zero-width and other invisible characters (U+200B, U+2060–U+2064, U+FEFF, the soft
//! hyphen, Hangul fillers) make two different strings look alike and slip a word past the
//! streamer's blocked words (`b\u{200B}ad` is not `bad`). The two joiners are different: the
//! zero-width joiner builds emoji sequences (👨‍👩‍👧) and both joiners are needed in Persian and
//! Indic scripts, so they are kept after a non-ASCII character and dropped after an ASCII one,
//! where they do nothing but hide a word.
//!
//! What each field does with them (the policy the README states):
//! - names people choose to be known by, and stream titles — refused (`invalid_characters`), so
//!   the person sees why;
//! - long or chatty text (stream descriptions, comments, donation messages, blocked words) —
//!   stripped, since it is often pasted from elsewhere with such characters in it and refusing a
//!   chat message over an invisible character would only puzzle its author.

use std::borrow::Cow;

/// Characters that draw nothing and can reorder or disguise text. The joiners are handled
/// apart (see the module notes).
#[must_use]
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'                  // soft hyphen
            | '\u{034F}'            // combining grapheme joiner
            | '\u{061C}'            // Arabic letter mark
            | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' // Hangul fillers
            | '\u{180E}'            // Mongolian vowel separator
            | '\u{200B}'            // zero-width space
            | '\u{200E}' | '\u{200F}' // left-to-right / right-to-left marks
            | '\u{202A}'..='\u{202E}' // bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}' // bidi isolates
            | '\u{206A}'..='\u{206F}' // deprecated format characters
            | '\u{FEFF}' // zero-width no-break space (BOM)
    )
}

fn is_joiner(c: char) -> bool {
    matches!(c, '\u{200C}' | '\u{200D}')
}

/// The first character that [`strip_invisible`] would remove, if any.
#[must_use]
pub fn find_invisible(text: &str) -> Option<char> {
    let mut previous: Option<char> = None;
    for c in text.chars() {
        if is_invisible(c) || (is_joiner(c) && previous.is_none_or(|p| p.is_ascii())) {
            return Some(c);
        }
        previous = Some(c);
    }
    None
}

/// `text` without invisible characters (joiners kept only after a non-ASCII character).
#[must_use]
pub fn strip_invisible(text: &str) -> Cow<'_, str> {
    if find_invisible(text).is_none() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let keep = !is_invisible(c)
            && (!is_joiner(c) || out.chars().next_back().is_some_and(|p| !p.is_ascii()));
        if keep {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Whether `text` holds a control character other than the line breaks and tabs that
/// multi-line text may contain (`multiline`), or any control character at all.
#[must_use]
pub fn has_control(text: &str, multiline: bool) -> bool {
    text.chars()
        .any(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidi_controls_and_zero_width_characters_are_found_and_stripped() {
        for sneaky in [
            "evil\u{202E}gnp.exe",
            "b\u{200B}ad",
            "ab\u{2066}c\u{2069}",
            "\u{FEFF}title",
            "soft\u{00AD}hyphen",
            "\u{3164}",
            "b\u{200D}ad",
        ] {
            assert!(find_invisible(sneaky).is_some(), "{sneaky:?}");
            assert!(
                find_invisible(&strip_invisible(sneaky)).is_none(),
                "{sneaky:?}"
            );
        }
        assert_eq!(strip_invisible("b\u{200B}a\u{200D}d"), "bad");
        assert_eq!(strip_invisible("evil\u{202E}gnp.exe"), "evilgnp.exe");
    }

    #[test]
    fn ordinary_text_emoji_sequences_and_joiners_in_scripts_are_kept() {
        for fine in [
            "Main bareng malam ini!",
            "Selamat datang 👋",
            "👨\u{200D}👩\u{200D}👧 keluarga",
            "می\u{200C}خواهم",
            "क्\u{200D}ष",
            "שלום",
            "❤\u{FE0F}",
        ] {
            assert_eq!(find_invisible(fine), None, "{fine:?}");
            assert!(
                matches!(strip_invisible(fine), Cow::Borrowed(_)),
                "{fine:?}"
            );
        }
    }

    #[test]
    fn control_characters_are_told_apart_from_line_breaks() {
        assert!(has_control("a\u{0}b", true));
        assert!(has_control("a\u{7}b", true));
        assert!(!has_control("line one\nline two\r\n\tindented", true));
        assert!(has_control("line one\nline two", false));
        assert!(!has_control("plain", false));
    }
}
