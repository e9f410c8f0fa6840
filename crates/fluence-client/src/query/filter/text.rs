//! `$text`: parsing the search string and matching it against documents.
//!
//! The search string is split exactly as MongoDB's `FTSQueryParser` and
//! `FTSQueryImpl::parse` do: space, `\n`, `\v`, `\f` and `\r` separate
//! tokens; `-` directly after whitespace (or at the start) negates the next
//! term or phrase; `"…"` delimits a phrase. Words of a positive phrase also
//! count as positive terms; a negated phrase contributes no terms.
//!
//! A document matches when, over the strings found at the text-indexed paths
//! (the same candidates a filter would see, see [`super::super::path`]):
//! some string contains a positive term, no string contains a negated term,
//! every positive phrase occurs in some string and no negated phrase occurs
//! in any. Terms and phrases are normalised with the caller's normaliser
//! (the one that produced the text index tokens), so a search with no
//! positive term matches nothing, as in MongoDB.

use std::collections::HashSet;

use bson::{Bson, Document};

use super::super::bson_type::type_name;
use super::super::error::QueryError;
use super::super::path::text_values;
use super::eval::EvalContext;

/// A parsed `$text` query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextSearch {
    search: String,
    positive_terms: Vec<String>,
    negated_terms: Vec<String>,
    positive_phrases: Vec<String>,
    negated_phrases: Vec<String>,
}

impl TextSearch {
    /// Parses the value of a `$text` operator.
    pub(crate) fn parse(value: &Bson) -> Result<TextSearch, QueryError> {
        let Bson::Document(spec) = value else {
            return Err(QueryError::bad_value("$text expects an object"));
        };
        let search = match spec.get("$search") {
            Some(Bson::String(s)) => s.clone(),
            Some(other) => {
                return Err(QueryError::type_mismatch(format!(
                    "\"$search\" had the wrong type. Expected string, found {}",
                    type_name(other)
                )))
            }
            None => {
                return Err(QueryError::NoSuchKey {
                    message: "Missing expected field \"$search\"".to_string(),
                })
            }
        };
        let mut expected_fields = 1;
        if let Some(language) = spec.get("$language") {
            if !matches!(language, Bson::String(_)) {
                return Err(QueryError::type_mismatch(format!(
                    "\"$language\" had the wrong type. Expected string, found {}",
                    type_name(language)
                )));
            }
            // Accepted and ignored: words are normalised by the caller's
            // language-independent normaliser.
            expected_fields += 1;
        }
        for flag in ["$caseSensitive", "$diacriticSensitive"] {
            if let Some(v) = spec.get(flag) {
                match v {
                    Bson::Boolean(false) => {}
                    // Sensitive matching would need the original spelling, but
                    // the text index only holds normalised words.
                    Bson::Boolean(true) => {
                        return Err(QueryError::unsupported(format!("{flag}: true")))
                    }
                    other => {
                        return Err(QueryError::type_mismatch(format!(
                            "\"{flag}\" had the wrong type. Expected bool, found {}",
                            type_name(other)
                        )))
                    }
                }
                expected_fields += 1;
            }
        }
        if spec.len() != expected_fields {
            return Err(QueryError::bad_value("extra fields in $text"));
        }
        Ok(TextSearch::from_search(&search))
    }

    fn from_search(search: &str) -> TextSearch {
        let mut out = TextSearch {
            search: search.to_string(),
            positive_terms: Vec::new(),
            negated_terms: Vec::new(),
            positive_phrases: Vec::new(),
            negated_phrases: Vec::new(),
        };
        let mut in_negation = false;
        let mut in_phrase = false;
        let mut quote_offset = 0;
        for token in tokenize(search) {
            match token.kind {
                TokenKind::Text => {
                    if in_phrase && in_negation {
                        continue;
                    }
                    // A negation lasts until the next whitespace: "-foo-bar"
                    // negates both, "- foo" negates nothing.
                    if in_negation && token.previous_whitespace {
                        in_negation = false;
                    }
                    let text = search[token.start..token.end].to_string();
                    if in_negation {
                        out.negated_terms.push(text);
                    } else {
                        out.positive_terms.push(text);
                    }
                }
                TokenKind::Dash => {
                    if !in_phrase && token.previous_whitespace {
                        in_negation = true;
                    }
                }
                TokenKind::Quote => {
                    if in_phrase {
                        let phrase = search[quote_offset + 1..token.start].to_string();
                        if in_negation {
                            out.negated_phrases.push(phrase);
                        } else {
                            out.positive_phrases.push(phrase);
                        }
                        in_phrase = false;
                    } else {
                        in_phrase = true;
                        if in_negation && token.previous_whitespace {
                            in_negation = false;
                        }
                        quote_offset = token.start;
                    }
                }
            }
        }
        out
    }

    /// The search string as given.
    pub fn search(&self) -> &str {
        &self.search
    }

    /// The raw text of the positive terms, space-separated. Every matching
    /// document holds at least one normalised word of this string in a
    /// text-indexed field, which is what the planner asks the node for.
    pub fn positive_text(&self) -> String {
        self.positive_terms.join(" ")
    }

    /// Raw positive terms (words of positive phrases included).
    pub fn positive_terms(&self) -> &[String] {
        &self.positive_terms
    }

    /// Raw negated terms.
    pub fn negated_terms(&self) -> &[String] {
        &self.negated_terms
    }

    /// Positive phrases, as written between quotes.
    pub fn positive_phrases(&self) -> &[String] {
        &self.positive_phrases
    }

    /// Negated phrases, as written between quotes.
    pub fn negated_phrases(&self) -> &[String] {
        &self.negated_phrases
    }

    /// Whether `doc` matches this search over the context's text paths.
    pub(crate) fn matches(&self, doc: &Document, ctx: &EvalContext<'_>) -> bool {
        let normalize = |s: &str| ctx.normalize(s);
        let positive: HashSet<String> = self
            .positive_terms
            .iter()
            .flat_map(|t| normalize(t))
            .collect();
        if positive.is_empty() {
            return false;
        }
        let fields: Vec<Vec<String>> = ctx
            .text_paths()
            .iter()
            .flat_map(|p| text_values(doc, p))
            .map(normalize)
            .collect();
        let has_word = |words: &HashSet<String>| {
            fields
                .iter()
                .any(|field| field.iter().any(|w| words.contains(w)))
        };
        if !has_word(&positive) {
            return false;
        }
        let negated: HashSet<String> = self
            .negated_terms
            .iter()
            .flat_map(|t| normalize(t))
            .collect();
        if has_word(&negated) {
            return false;
        }
        let has_phrase = |phrase: &String| {
            let words = normalize(phrase);
            fields.iter().any(|field| contains_sequence(field, &words))
        };
        self.positive_phrases.iter().all(has_phrase) && !self.negated_phrases.iter().any(has_phrase)
    }
}

/// Whether `words` occurs contiguously in `field` (an empty phrase occurs in
/// every field, as an empty substring does in MongoDB).
fn contains_sequence(field: &[String], words: &[String]) -> bool {
    words.is_empty() || field.windows(words.len()).any(|w| w == words)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenKind {
    Text,
    Dash,
    Quote,
}

#[derive(Debug, Clone, Copy)]
struct Token {
    kind: TokenKind,
    start: usize,
    end: usize,
    previous_whitespace: bool,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// MongoDB's `FTSQueryParser`. All delimiters are ASCII, so byte offsets are
/// always UTF-8 boundaries.
fn tokenize(s: &str) -> Vec<Token> {
    let bytes = s.as_bytes();
    let mut pos = 0;
    let skip_space = |pos: &mut usize| {
        let start = *pos;
        while *pos < bytes.len() && is_space(bytes[*pos]) {
            *pos += 1;
        }
        *pos > start
    };
    skip_space(&mut pos);
    let mut previous_whitespace = true;
    let mut out = Vec::new();
    while pos < bytes.len() {
        let start = pos;
        let kind = match bytes[pos] {
            b'-' => TokenKind::Dash,
            b'"' => TokenKind::Quote,
            _ => TokenKind::Text,
        };
        pos += 1;
        if kind == TokenKind::Text {
            while pos < bytes.len() && !is_space(bytes[pos]) && !matches!(bytes[pos], b'-' | b'"') {
                pos += 1;
            }
        }
        out.push(Token {
            kind,
            start,
            end: pos,
            previous_whitespace,
        });
        previous_whitespace = skip_space(&mut pos);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn parse(search: &str) -> TextSearch {
        TextSearch::parse(&Bson::Document(doc! {"$search": search})).unwrap()
    }

    #[test]
    fn terms_negations_and_phrases() {
        let t = parse("coffee -tea \"shop owner\" -\"iced latte\" cake");
        assert_eq!(t.positive_terms(), ["coffee", "shop", "owner", "cake"]);
        assert_eq!(t.negated_terms(), ["tea"]);
        assert_eq!(t.positive_phrases(), ["shop owner"]);
        assert_eq!(t.negated_phrases(), ["iced latte"]);
        assert_eq!(t.positive_text(), "coffee shop owner cake");
    }

    #[test]
    fn negation_rules_follow_mongodb() {
        // "- foo" does not negate; "-foo-bar" negates both; "a-b" negates nothing.
        assert_eq!(parse("- foo").positive_terms(), ["foo"]);
        let t = parse("-foo-bar");
        assert_eq!(t.negated_terms(), ["foo", "bar"]);
        assert!(t.positive_terms().is_empty());
        let t = parse("a-b");
        assert_eq!(t.positive_terms(), ["a", "b"]);
        // A negation does not reach into a phrase separated by whitespace.
        let t = parse("- \"x y\"");
        assert_eq!(t.positive_phrases(), ["x y"]);
        // An unterminated phrase keeps its words as terms.
        let t = parse("\"open ended");
        assert_eq!(t.positive_terms(), ["open", "ended"]);
        assert!(t.positive_phrases().is_empty());
    }

    #[test]
    fn shape_errors_use_mongodb_wording() {
        let err = |v: Bson| TextSearch::parse(&v).unwrap_err().to_string();
        assert_eq!(err(Bson::Int32(1)), "$text expects an object");
        assert_eq!(
            err(Bson::Document(doc! {})),
            "Missing expected field \"$search\""
        );
        assert_eq!(
            err(Bson::Document(doc! {"$search": 1})),
            "\"$search\" had the wrong type. Expected string, found int"
        );
        assert_eq!(
            err(Bson::Document(doc! {"$search": "x", "extra": 1})),
            "extra fields in $text"
        );
        assert!(matches!(
            TextSearch::parse(&Bson::Document(
                doc! {"$search": "x", "$caseSensitive": true}
            )),
            Err(QueryError::UnsupportedOperator { .. })
        ));
        assert!(TextSearch::parse(&Bson::Document(
            doc! {"$search": "x", "$language": "en", "$caseSensitive": false, "$diacriticSensitive": false}
        ))
        .is_ok());
    }
}
