//! Error messages in Cedar's style: lower-case first letter, no final period, causes joined.

/// An error's message and the messages of its sources, joined by `: ` (Cedar's entity errors
/// say "does not conform to the schema" and give the attribute and types in their source),
/// with [`lower_first`] applied.
pub fn error_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    lower_first(&text)
}

/// Lowercases the first letter and drops a final period (Cedar's message style); an acronym
/// (`EOF`, `JSON`) keeps its case.
pub fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        // An acronym (`EOF`, `JSON`) keeps its case.
        Some(f) if c.clone().next().is_some_and(char::is_uppercase) => {
            f.to_string() + c.as_str().trim_end_matches('.')
        }
        Some(f) => f
            .to_lowercase()
            .chain(c)
            .collect::<String>()
            .trim_end_matches('.')
            .to_owned(),
        None => String::new(),
    }
}
