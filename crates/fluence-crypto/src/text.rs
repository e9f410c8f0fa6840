//! Word normalization for the `text` index.
//!
//! The gateway runs the same function on stored text and on search terms, and
//! turns each word into a token with
//! [`TokenKey::text_tokens`](crate::keys::TokenKey::text_tokens). Leakage: a
//! node learns which documents share a (normalized) word and how many distinct
//! words (up to [`WORDS_MAX`]) a field holds, never the words.
//!
//! # Normalization
//!
//! 1. Split into words with Unicode word segmentation (UAX #29,
//!    `unicode_words`: punctuation and whitespace are dropped).
//! 2. Each word: NFKC, then lowercase (full Unicode case mapping), then NFKC
//!    again (lowercasing can produce unnormalized sequences), so `"Ｆｏｏ"`,
//!    `"FOO"` and `"foo"` are the same word and the ligature `"ﬁ"` is `"fi"`.
//! 3. NFKC can introduce punctuation and word breaks (for example `"⑴"` becomes
//!    `"(1)"`), so the normalized word is segmented again (and whitespace
//!    NFKC put inside a segment is removed).
//! 4. Words longer than [`WORD_LEN_MAX`] bytes are truncated at a character
//!    boundary (and only the first [`SEGMENT_LEN_MAX`] bytes of a segment are
//!    normalized at all, so the work per segment is bounded).
//! 5. Duplicates are dropped, keeping the order of first appearance; at most
//!    [`WORDS_MAX`] words are returned (the rest of the text is ignored).
//!
//! Segmenting before normalizing keeps the work proportional to the words
//! actually returned, so a huge text stops being read once [`WORDS_MAX`]
//! distinct words are found.

use std::collections::HashSet;

use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;

/// Longest word kept, in bytes of UTF-8; longer words are truncated.
pub const WORD_LEN_MAX: usize = 64;
/// Most distinct words returned for one text.
pub const WORDS_MAX: usize = 4096;
/// Longest raw segment normalized, in bytes; the rest of a longer segment is
/// ignored.
pub const SEGMENT_LEN_MAX: usize = 1024;

/// Normalized, deduplicated words of `text` in order of first appearance.
pub fn normalize_words(text: &str) -> Vec<String> {
    normalize_words_with(text, true)
}

/// [`normalize_words`], with the ASCII fast path switchable so tests can
/// check it against the general path.
fn normalize_words_with(text: &str, ascii_fast_path: bool) -> Vec<String> {
    let mut words = Words::default();
    for raw in text.unicode_words() {
        // Bound the work per segment (a text without word breaks is one
        // segment). NFKC shrinks text by at most a factor of 3, so this cut
        // never shortens a word below WORD_LEN_MAX.
        let raw = truncate_at_char_boundary(raw, SEGMENT_LEN_MAX);
        if ascii_fast_path && raw.is_ascii() {
            // NFKC is the identity on ASCII and ASCII lowercasing keeps every
            // character's word-break class, so the general path would yield
            // exactly this one word.
            if words.add(&raw.to_ascii_lowercase()) {
                break;
            }
            continue;
        }
        let lowered: String = raw.nfkc().collect::<String>().to_lowercase();
        let normalized: String = lowered.nfkc().collect();
        let mut full = false;
        for segment in normalized.unicode_words() {
            // NFKC can produce a space followed by a combining mark (U+FE70
            // becomes " \u{64B}"), which segmentation keeps as one segment.
            full = if segment.chars().any(char::is_whitespace) {
                let without: String = segment.chars().filter(|c| !c.is_whitespace()).collect();
                words.add(&without)
            } else {
                words.add(segment)
            };
            if full {
                break;
            }
        }
        if full {
            break;
        }
    }
    words.list
}

/// Distinct words in order of first appearance, bounded by [`WORDS_MAX`].
#[derive(Default)]
struct Words {
    seen: HashSet<String>,
    list: Vec<String>,
}

impl Words {
    /// Adds `word` (truncated to [`WORD_LEN_MAX`] bytes) unless empty or
    /// already present; returns whether the list is now full.
    fn add(&mut self, word: &str) -> bool {
        let word = truncate_at_char_boundary(word, WORD_LEN_MAX);
        if !word.is_empty() && !self.seen.contains(word) {
            self.seen.insert(word.to_owned());
            self.list.push(word.to_owned());
        }
        self.list.len() >= WORDS_MAX
    }
}

/// The longest prefix of `s` of at most `len_max` bytes that ends on a char boundary.
fn truncate_at_char_boundary(s: &str, len_max: usize) -> &str {
    if s.len() <= len_max {
        return s;
    }
    let mut end = len_max;
    // Index 0 is always a boundary, so this terminates.
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn words(text: &str) -> Vec<String> {
        normalize_words(text)
    }

    #[test]
    fn basic_examples() {
        assert_eq!(words("Hello, World! hello world."), vec!["hello", "world"]);
        assert_eq!(words(""), Vec::<String>::new());
        assert_eq!(words("  ,.;!?  -- "), Vec::<String>::new());
        assert_eq!(
            words("The quick (brown) fox"),
            vec!["the", "quick", "brown", "fox"]
        );
        // Apostrophes and decimal points stay inside words (UAX #29).
        assert_eq!(words("can't stop 3.14"), vec!["can't", "stop", "3.14"]);
    }

    #[test]
    fn unicode_case_and_compatibility() {
        // Fullwidth letters and ligatures fold to ASCII under NFKC.
        assert_eq!(words("ＦＯＯ foo Foo"), vec!["foo"]);
        assert_eq!(words("ﬁne fine"), vec!["fine"]);
        // Composed and decomposed forms are the same word.
        assert_eq!(words("Café cafe\u{301} CAFÉ"), vec!["café"]);
        // Greek with final sigma, German eszett stays (lowercase, not casefold).
        assert_eq!(words("ΟΔΟΣ οδος"), vec!["οδος"]);
        assert_eq!(words("Straße STRASSE"), vec!["straße", "strasse"]);
        // Ideographs are single-character words.
        assert_eq!(words("東京 東"), vec!["東", "京"]);
        // NFKC output is segmented again: "⑴" is "(1)", "⒉" is "2.".
        assert_eq!(words("⑴ ⒉ x⑶"), vec!["1", "2", "x", "3"]);
        assert_eq!(words("½"), vec!["1⁄2"]);
        // A space produced by NFKC never ends up inside a word.
        assert_eq!(words("Aﹰ"), vec!["a", "\u{64B}"]);
    }

    #[test]
    fn long_words_truncated_on_char_boundary() {
        let long = "a".repeat(100);
        assert_eq!(words(&long), vec!["a".repeat(64)]);
        // 'é' is 2 bytes: 63 bytes of 'a' then é would end at 65 bytes.
        let mixed = format!("{}é{}", "a".repeat(63), "b".repeat(10));
        assert_eq!(words(&mixed), vec!["a".repeat(63)]);
        // Two long words sharing 64 bytes collapse into one.
        let w1 = format!("{}x", "a".repeat(64));
        let w2 = format!("{}y", "a".repeat(64));
        assert_eq!(words(&format!("{w1} {w2}")).len(), 1);
    }

    #[test]
    fn huge_segment_is_bounded() {
        // One 1 MiB "word" of non-ASCII letters: only its start is normalized.
        let text = "É".repeat(512 * 1024);
        let out = words(&text);
        assert_eq!(out, vec!["é".repeat(32)]);
    }

    #[test]
    fn word_count_bounded() {
        let text: String = (0..5000).map(|i| format!("w{i} ")).collect();
        let out = words(&text);
        assert_eq!(out.len(), WORDS_MAX);
        assert_eq!(out[0], "w0");
        assert_eq!(out[WORDS_MAX - 1], format!("w{}", WORDS_MAX - 1));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn ascii_fast_path_matches_general_path(
            ascii in "[ -~]{0,120}",
            mixed in "[a-zA-Z0-9 .,'ÄÖÜäöüßﬁＡ-Ｚ]{0,60}",
        ) {
            prop_assert_eq!(normalize_words_with(&ascii, true), normalize_words_with(&ascii, false));
            prop_assert_eq!(normalize_words_with(&mixed, true), normalize_words_with(&mixed, false));
        }

        #[test]
        fn output_is_normalized_bounded_and_idempotent(text in "\\PC{0,200}") {
            let out = words(&text);
            let unique: HashSet<&String> = out.iter().collect();
            prop_assert_eq!(unique.len(), out.len());
            prop_assert!(out.len() <= WORDS_MAX);
            for w in &out {
                prop_assert!(!w.is_empty() && w.len() <= WORD_LEN_MAX);
            }
            // Normalizing the output again (words joined by spaces) is stable
            // for words that were not truncated.
            let joined = out.join(" ");
            let again = words(&joined);
            if out.iter().all(|w| w.len() < WORD_LEN_MAX) {
                prop_assert_eq!(again, out);
            }
        }
    }
}
