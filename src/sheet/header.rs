//! Header mapping: which column holds which field.
//!
//! Names are matched case- and whitespace-insensitively (`User Principal Name` =
//! `userPrincipalName`), with the names and aliases of the attribute table (`model::attr`). An unknown column is
//! an error unless the caller asks to ignore unknown columns (then it is a warning), because
//! a misspelt `numbr` column silently ignored would leave every number unchanged. Two
//! columns for one field (`name` and `displayName`) are an error: which one wins would be a
//! guess. A column with an empty header is ignored, so trailing separators do no harm; a
//! value under it is reported by the validator.

use super::{column_letter, Cell, Row};
use crate::model::Attr;
use std::fmt;

/// What a sheet column holds: a user attribute (the table in `model::attr` names them and
/// their aliases), or one of the control columns that say which user and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    Upn,
    Attr(Attr),
    AccountType,
    Template,
    Action,
}

impl Column {
    /// Every column, in the order our exports write them: the key, the attributes in
    /// table order, then the control columns.
    pub fn all() -> impl Iterator<Item = Column> {
        std::iter::once(Column::Upn)
            .chain(Attr::all().map(Column::Attr))
            .chain([Column::AccountType, Column::Template, Column::Action])
    }

    /// Canonical header name, as our own exports write it.
    pub fn name(self) -> &'static str {
        match self {
            Column::Upn => "upn",
            Column::Attr(a) => a.name(),
            Column::AccountType => "accountType",
            Column::Template => "template",
            Column::Action => "action",
        }
    }

    /// Spellings accepted besides the canonical name, already folded (lowercase, no
    /// whitespace).
    fn aliases(self) -> &'static [&'static str] {
        match self {
            Column::Upn => &["userprincipalname", "user"],
            Column::Attr(a) => a.info().aliases,
            Column::AccountType | Column::Template | Column::Action => &[],
        }
    }

    /// The field a header cell names, if any.
    pub fn from_header(raw: &str) -> Option<Column> {
        let folded = fold(raw);
        Column::all().find(|c| fold(c.name()) == folded || c.aliases().contains(&folded.as_str()))
    }
}

impl From<Attr> for Column {
    fn from(a: Attr) -> Column {
        Column::Attr(a)
    }
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn fold(raw: &str) -> String {
    let s = raw.trim();
    let s = s.strip_prefix('\'').unwrap_or(s);
    s.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// A header problem, located by 0-based column index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderProblem {
    pub column: Option<usize>,
    pub message: String,
}

/// The mapped header of one sheet.
#[derive(Debug, Clone)]
pub struct HeaderMap {
    /// Per column index: the field it holds (None: empty header or ignored unknown column).
    fields: Vec<Option<Column>>,
    /// Header text per column index, as written.
    names: Vec<String>,
}

impl HeaderMap {
    /// Maps a header row. Returns the map (usable for reporting locations even when there
    /// are problems), the errors, and warnings (ignored unknown columns).
    pub fn map(
        header: &Row,
        ignore_unknown_columns: bool,
    ) -> (HeaderMap, Vec<HeaderProblem>, Vec<HeaderProblem>) {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let mut fields = Vec::with_capacity(header.cells.len());
        let mut names = Vec::with_capacity(header.cells.len());
        for (i, cell) in header.cells.iter().enumerate() {
            let text = cell.display().trim().to_string();
            let text = text.strip_prefix('\'').unwrap_or(&text).trim().to_string();
            names.push(text.clone());
            if text.is_empty() {
                fields.push(None);
                continue;
            }
            if let Some(col) = Column::from_header(&text) {
                if let Some(first) = fields.iter().position(|f| *f == Some(col)) {
                    errors.push(HeaderProblem {
                        column: Some(i),
                        message: format!(
                            "duplicate column: {:?} and {:?} (column {}) both name the {} \
                             field",
                            text,
                            names[first],
                            column_letter(first),
                            col
                        ),
                    });
                    fields.push(None);
                } else {
                    fields.push(Some(col));
                }
            } else {
                let known = Column::all()
                    .map(Column::name)
                    .collect::<Vec<_>>()
                    .join(", ");
                let p = HeaderProblem {
                    column: Some(i),
                    message: if ignore_unknown_columns {
                        format!("unknown column {text:?} ignored")
                    } else {
                        format!(
                            "unknown column {text:?} (known: {known}; or pass \
                             --ignore-unknown-columns)"
                        )
                    },
                };
                if ignore_unknown_columns {
                    warnings.push(p);
                } else {
                    errors.push(p);
                }
                fields.push(None);
            }
        }
        let map = HeaderMap { fields, names };
        if map.index_of(Column::Upn).is_none() {
            errors.push(HeaderProblem {
                column: None,
                message: "no upn column (expected a header named upn, UserPrincipalName or \
                          user)"
                    .into(),
            });
        }
        (map, errors, warnings)
    }

    /// 0-based index of the column holding a field.
    pub fn index_of(&self, col: Column) -> Option<usize> {
        self.fields.iter().position(|f| *f == Some(col))
    }

    pub fn has(&self, col: Column) -> bool {
        self.index_of(col).is_some()
    }

    /// The field held by a column index.
    pub fn field_at(&self, index: usize) -> Option<Column> {
        self.fields.get(index).copied().flatten()
    }

    /// True for a column index with no header text (empty header cell or beyond the
    /// header's width).
    pub fn is_unnamed(&self, index: usize) -> bool {
        self.names
            .get(index)
            .is_none_or(std::string::String::is_empty)
    }

    /// Number of header columns.
    pub fn width(&self) -> usize {
        self.fields.len()
    }

    /// How a column is named in messages: header text and letter, `phoneNumber (C)`.
    pub fn label(&self, index: usize) -> String {
        match self.names.get(index) {
            Some(n) if !n.is_empty() => format!("{n} ({})", column_letter(index)),
            _ => column_letter(index),
        }
    }

    /// Label of the column holding a field, or the field's name when the sheet has none.
    pub fn label_of(&self, col: Column) -> String {
        match self.index_of(col) {
            Some(i) => self.label(i),
            None => col.name().to_string(),
        }
    }

    /// The cell a row holds for a field (Empty when the column is missing or short).
    pub fn cell<'r>(&self, row: &'r Row, col: Column) -> &'r Cell {
        const EMPTY: &Cell = &Cell::Empty;
        self.index_of(col)
            .and_then(|i| row.cells.get(i))
            .unwrap_or(EMPTY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(names: &[&str]) -> Row {
        Row {
            row: 1,
            cells: names.iter().map(|n| Cell::Text(n.to_string())).collect(),
        }
    }

    #[test]
    fn aliases_case_and_spaces() {
        assert_eq!(
            Column::from_header("User Principal Name"),
            Some(Column::Upn)
        );
        assert_eq!(
            Column::from_header(" DISPLAYNAME "),
            Some(Column::Attr(Attr::DisplayName))
        );
        assert_eq!(
            Column::from_header("LineURI"),
            Some(Column::Attr(Attr::Number))
        );
        assert_eq!(
            Column::from_header("Usage Location"),
            Some(Column::Attr(Attr::Country))
        );
        assert_eq!(
            Column::from_header("OnlineVoiceRoutingPolicy"),
            Some(Column::Attr(Attr::Vrp))
        );
        assert_eq!(
            Column::from_header("customer licenses"),
            Some(Column::Attr(Attr::CustomerLicenses))
        );
        assert_eq!(
            Column::from_header("Account Type"),
            Some(Column::AccountType)
        );
        assert_eq!(Column::from_header("numbr"), None);
    }

    #[test]
    fn every_attribute_is_a_column_under_its_name_and_aliases() {
        for info in crate::model::attr::ATTRS {
            let col = Some(Column::Attr(info.attr));
            assert_eq!(Column::from_header(info.name), col);
            for a in info.aliases {
                assert_eq!(Column::from_header(a), col, "{a}");
            }
        }
        assert_eq!(
            Column::from_header("Extension Number"),
            Some(Column::Attr(Attr::Extension))
        );
        let names: Vec<&str> = Column::all().map(Column::name).collect();
        assert_eq!(names.first(), Some(&"upn"));
        assert_eq!(names.len(), crate::model::attr::ATTRS.len() + 4);
    }

    #[test]
    fn unknown_duplicate_and_missing_upn() {
        let (_, errs, _) = HeaderMap::map(&header(&["name", "numbr", "DisplayName"]), false);
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[0].message.contains("unknown column \"numbr\""));
        assert_eq!(errs[0].column, Some(1));
        assert!(errs[1].message.contains("duplicate column"));
        assert!(errs[1].message.contains("column A"));
        assert!(errs[2].message.contains("no upn column"));
        assert_eq!(errs[2].column, None);
    }

    #[test]
    fn ignored_unknown_and_empty_headers() {
        let (map, errs, warns) = HeaderMap::map(&header(&["upn", "Notes", "", "phone"]), true);
        assert!(errs.is_empty());
        assert_eq!(warns.len(), 1);
        assert_eq!(map.index_of(Column::Attr(Attr::Number)), Some(3));
        assert_eq!(map.label(3), "phone (D)");
        assert_eq!(map.label(2), "C");
        assert_eq!(map.field_at(1), None);
    }
}
