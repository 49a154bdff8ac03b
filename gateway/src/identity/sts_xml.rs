//! STS's XML answers: AssumeRoleWithWebIdentity, GetCallerIdentity, and ErrorResponse.

use std::fmt::Write as _;

use time::{OffsetDateTime, format_description::FormatItem, macros::format_description};

use crate::aws_error::xml_escape;

/// The XML namespace of every STS answer.
pub const STS_XML_NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

const EXPIRATION_FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// STS's timestamp form, e.g. `2026-11-25T18:00:00Z` (UTC, whole seconds).
pub fn sts_timestamp(at: OffsetDateTime) -> String {
    let utc = at.to_offset(time::UtcOffset::UTC);
    utc.format(EXPIRATION_FORMAT).unwrap_or_else(|_| utc.unix_timestamp().to_string())
}

/// A small writer of indented XML elements whose text is always escaped.
pub(crate) struct XmlWriter {
    out: String,
    depth: usize,
}

impl XmlWriter {
    pub(crate) fn new() -> Self {
        Self { out: String::new(), depth: 0 }
    }

    pub(crate) fn open_root(&mut self, name: &str) {
        let _ = writeln!(self.out, "<{name} xmlns=\"{STS_XML_NAMESPACE}\">");
        self.depth = 1;
    }

    pub(crate) fn open(&mut self, name: &str) {
        self.indent();
        let _ = writeln!(self.out, "<{name}>");
        self.depth += 1;
    }

    pub(crate) fn close(&mut self, name: &str) {
        self.depth = self.depth.saturating_sub(1);
        self.indent();
        let _ = writeln!(self.out, "</{name}>");
    }

    pub(crate) fn element(&mut self, name: &str, text: &str) {
        self.indent();
        let _ = writeln!(self.out, "<{name}>{}</{name}>", xml_escape(text));
    }

    pub(crate) fn request_metadata(&mut self, request_id: &str) {
        self.open("ResponseMetadata");
        self.element("RequestId", request_id);
        self.close("ResponseMetadata");
    }

    pub(crate) fn finish(self) -> String {
        self.out
    }

    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_characters_are_escaped() {
        assert_eq!(xml_escape(r#"a<b>&"c"'d'"#), "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;");
    }

    #[test]
    fn characters_xml_cannot_carry_are_replaced_and_whitespace_kept() {
        assert_eq!(xml_escape("a\u{0}b\u{1b}c\td\ne"), "a\u{FFFD}b\u{FFFD}c\td\ne");
        assert_eq!(xml_escape("ünïcødé ✓"), "ünïcødé ✓");
    }

    #[test]
    fn timestamps_are_utc_whole_seconds_with_a_z() {
        let at = OffsetDateTime::from_unix_timestamp(1_764_093_600).unwrap()
            + time::Duration::milliseconds(750);
        assert_eq!(sts_timestamp(at), "2025-11-25T18:00:00Z");
        let offset = at.to_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap());
        assert_eq!(sts_timestamp(offset), "2025-11-25T18:00:00Z");
    }

    proptest::proptest! {
        #[test]
        fn escaped_text_has_no_markup_and_unescapes_to_the_carriable_input(text in "\\PC{0,80}|[<>&'\"a\u{0}-\u{1f}]{0,40}") {
            let escaped = xml_escape(&text);
            proptest::prop_assert!(!escaped.contains(['<', '>', '"', '\'']));
            let unescaped = escaped
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&");
            let carriable: String = text
                .chars()
                .map(|c| if c.is_control() && !matches!(c, '\t' | '\n' | '\r') { '\u{FFFD}' } else { c })
                .collect();
            proptest::prop_assert_eq!(unescaped, carriable);
        }
    }
}
