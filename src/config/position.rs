//! Line and column of a byte offset in web.config text, as the XML parser counts them (lines
//! from 1, columns in characters from 1), at a cost that stays linear in the file's size
//! however many positions are asked for: an element with tens of thousands of attributes on
//! one line must not rescan the file, or the line, for each.

use std::cell::Cell;

pub(super) struct Positions<'t> {
    text: &'t str,
    /// The offset each line starts at; the first is 0.
    line_starts: Vec<usize>,
    /// The last position given (offset, column): positions are mostly asked for in document
    /// order, so the next column is counted on from there rather than from the line start.
    last: Cell<(usize, u32)>,
}

impl<'t> Positions<'t> {
    pub(super) fn new(text: &'t str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(
                text.bytes()
                    .enumerate()
                    .filter(|(_, b)| *b == b'\n')
                    .map(|(i, _)| i + 1),
            )
            .collect();
        Positions {
            text,
            line_starts,
            last: Cell::new((0, 1)),
        }
    }

    /// (line, column) of `offset`, which is clamped to the text and must fall on a character
    /// boundary (offsets from the parser do).
    pub(super) fn at(&self, offset: usize) -> (u32, u32) {
        let offset = offset.min(self.text.len());
        // The line whose start is the last one at or before `offset`.
        let line = self.line_starts.partition_point(|&start| start <= offset) - 1;
        let line_start = self.line_starts[line];
        let (last_offset, last_column) = self.last.get();
        let (from, column) = if last_offset >= line_start && last_offset <= offset {
            (last_offset, last_column)
        } else {
            (line_start, 1)
        };
        let column = self
            .text
            .get(from..offset)
            .map_or(column, |between| column + count(between));
        self.last.set((offset, column));
        (to_u32(line + 1), column)
    }
}

fn count(text: &str) -> u32 {
    to_u32(text.chars().count())
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_the_parser_in_any_order() {
        let text = "<a>\r\n  <bé c=\"ü\"\n d='x'/>\n</a>\n";
        let doc = roxmltree::Document::parse(text).expect("valid");
        let positions = Positions::new(text);
        let mut offsets: Vec<usize> = (0..=text.len())
            .filter(|&i| text.is_char_boundary(i))
            .collect();
        for _ in 0..2 {
            for &offset in &offsets {
                let pos = doc.text_pos_at(offset);
                assert_eq!(positions.at(offset), (pos.row, pos.col), "offset {offset}");
            }
            offsets.reverse();
        }
    }
}
