//! Plain text tables in kubectl's style: upper-case headers, columns separated by three spaces,
//! the last column not padded.

/// A table being filled row by row.
#[derive(Clone, Debug)]
pub struct TextTable {
    rows: Vec<Vec<String>>,
}

impl TextTable {
    pub fn new(headers: &[&str]) -> Self {
        Self { rows: vec![headers.iter().map(|h| (*h).to_owned()).collect()] }
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// The table as text, one line per row, each ending with a newline.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|v| v.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (c, value) in row.iter().enumerate() {
                if c > 0 {
                    line.push_str("   ");
                }
                line.push_str(value);
                if c + 1 < row.len() {
                    let pad =
                        widths.get(c).copied().unwrap_or(0).saturating_sub(value.chars().count());
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_and_the_last_is_not_padded() {
        let mut table = TextTable::new(&["SESSION", "CALLS", "STATUS"]);
        table.push(vec!["a".into(), "12".into(), "closed".into()]);
        table.push(vec!["longer-id".into(), "3".into(), "open".into()]);
        assert_eq!(
            table.render(),
            "SESSION     CALLS   STATUS\na           12      closed\nlonger-id   3       open\n"
        );
    }
}
