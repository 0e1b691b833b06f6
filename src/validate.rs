//! Validation: sheet files + templates → desired `UserSpec`s, or located errors.
//!
//! This is the one place that decides whether a sheet is safe to plan from. It reads every
//! file, maps headers, normalises each cell, applies templates and checks what no single
//! cell can show: duplicate UPNs (case-insensitive) and numbers claimed twice, across all
//! files given; unknown templates; a sheet without user rows (an empty export must never
//! read as "remove everyone"); resource-account sheets mixed with user sheets. It never
//! stops at the first problem: every error names file, row and column so a 5,000-row sheet
//! is fixed in one pass. A file that cannot be read at all is a file-level diagnostic
//! (row `None`), never a panic.
//!
//! Choices: the template-override warning is given only when the row's value differs from
//! the template's (an equal value overrides nothing); a duplicate UPN or number is reported
//! on the later row, naming the earlier one, and only the later row counts as invalid.

use crate::model::{Diagnostic, Field, JobKind, RowOrigin, Upn, UserSpec, E164};
use crate::sheet::cell;
use crate::sheet::header::{Column, HeaderMap};
use crate::sheet::{self, ReadOptions, Row, SheetReader};
use crate::template::TemplateSet;
use std::collections::HashMap;
use std::path::PathBuf;

/// How to read the sheets.
#[derive(Debug, Clone, Default)]
pub struct SheetOptions {
    /// Worksheet to read in workbooks (first one when None); ignored for CSV.
    pub sheet_name: Option<String>,
    /// Unknown columns become warnings instead of errors.
    pub ignore_unknown_columns: bool,
    pub limits: sheet::Limits,
}

/// The outcome of validating one or more sheets.
#[derive(Debug, Clone, Default)]
pub struct Validated {
    pub files: Vec<String>,
    /// Non-blank data rows read (header excluded).
    pub rows: u64,
    /// Rows without errors.
    pub valid: u64,
    pub kind: JobKind,
    /// One per valid row, in sheet order, templates applied.
    pub specs: Vec<UserSpec>,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl Validated {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// `{"files":[..],"rows":N,"valid":N,"kind":"ms_users","errors":[{file,row,column,message}],"warnings":[..]}`
    pub fn to_json(&self) -> serde_json::Value {
        let diag = |d: &Diagnostic| {
            serde_json::json!({
                "file": d.file,
                "row": d.row,
                "column": d.column,
                "message": d.message,
            })
        };
        serde_json::json!({
            "files": self.files,
            "rows": self.rows,
            "valid": self.valid,
            "kind": self.kind.as_str(),
            "errors": self.errors.iter().map(diag).collect::<Vec<_>>(),
            "warnings": self.warnings.iter().map(diag).collect::<Vec<_>>(),
        })
    }

    /// Errors and warnings one per line, then a summary line.
    pub fn render_human(&self) -> String {
        let mut out = String::new();
        for e in &self.errors {
            out.push_str(&format!("error: {e}\n"));
        }
        for w in &self.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        let plural = |n: usize, s: &str| format!("{n} {s}{}", if n == 1 { "" } else { "s" });
        out.push_str(&format!(
            "{}, {} valid, {}, {}\n",
            plural(self.rows as usize, "row"),
            self.valid,
            plural(self.errors.len(), "error"),
            plural(self.warnings.len(), "warning"),
        ));
        out
    }
}

/// Reads, normalises and checks every file; the result merges them all.
pub fn validate_files(
    paths: &[PathBuf],
    opts: &SheetOptions,
    templates: &TemplateSet,
) -> Validated {
    let mut v = Validated {
        files: paths.iter().map(|p| p.display().to_string()).collect(),
        ..Validated::default()
    };
    if paths.is_empty() {
        v.errors.push(Diagnostic {
            file: String::new(),
            row: None,
            column: None,
            message: "no sheet given".into(),
        });
        return v;
    }
    let mut state = State::default();
    let mut kinds: Vec<(String, JobKind)> = Vec::new();
    for path in paths {
        let file = path.display().to_string();
        if let Some(kind) = validate_file(path, &file, opts, templates, &mut v, &mut state) {
            kinds.push((file, kind));
        }
    }
    if let Some((_, first)) = kinds.first() {
        v.kind = *first;
        for (file, k) in &kinds[1..] {
            if k != first {
                v.errors.push(Diagnostic {
                    file: file.clone(),
                    row: None,
                    column: None,
                    message: format!(
                        "this is a {} sheet but {} is a {} sheet: validate resource accounts \
                         and users separately",
                        kind_words(*k),
                        kinds[0].0,
                        kind_words(*first)
                    ),
                });
            }
        }
    }
    v
}

fn kind_words(k: JobKind) -> &'static str {
    match k {
        JobKind::MsUsers => "user",
        JobKind::MsResourceAccounts => "resource-account (accountType column)",
    }
}

/// What earlier rows (of any file) claimed.
#[derive(Default)]
struct State {
    upns: HashMap<Upn, (String, u64)>,
    numbers: HashMap<E164, (String, u64, Upn)>,
}

/// Validates one file into `v`; returns its kind when its header was usable.
fn validate_file(
    path: &std::path::Path,
    file: &str,
    opts: &SheetOptions,
    templates: &TemplateSet,
    v: &mut Validated,
    state: &mut State,
) -> Option<JobKind> {
    let file_diag = |message: String| Diagnostic {
        file: file.to_string(),
        row: None,
        column: None,
        message,
    };
    let read_opts = ReadOptions {
        sheet_name: opts.sheet_name.clone(),
        limits: opts.limits.clone(),
    };
    let mut reader = match SheetReader::open(path, &read_opts) {
        Ok(r) => r,
        Err(e) => {
            v.errors.push(Diagnostic {
                file: file.to_string(),
                row: e.row(),
                column: e.column().map(sheet::column_letter),
                message: e.to_string(),
            });
            return None;
        }
    };
    for w in reader.warnings() {
        v.warnings.push(file_diag(w.clone()));
    }
    let Some(header_row) = reader.header().cloned() else {
        v.errors.push(file_diag(
            "the file is empty: no header and no user rows (an empty export must never read \
             as \"remove everyone\")"
                .into(),
        ));
        return None;
    };
    let (header, header_errors, header_warnings) =
        HeaderMap::map(&header_row, opts.ignore_unknown_columns);
    let locate = |p: &sheet::header::HeaderProblem| Diagnostic {
        file: file.to_string(),
        row: Some(header_row.row),
        column: p.column.map(|c| header.label(c)),
        message: p.message.clone(),
    };
    v.warnings.extend(header_warnings.iter().map(locate));
    if !header_errors.is_empty() {
        v.errors.extend(header_errors.iter().map(locate));
        return None;
    }
    let kind = if header.has(Column::AccountType) {
        JobKind::MsResourceAccounts
    } else {
        JobKind::MsUsers
    };

    let mut rows_here = 0u64;
    for item in reader.by_ref() {
        let row = match item {
            Ok(r) => r,
            Err(e) => {
                v.errors.push(Diagnostic {
                    file: file.to_string(),
                    row: e.row(),
                    column: e.column().map(|c| header.label(c)),
                    message: e.to_string(),
                });
                break;
            }
        };
        rows_here += 1;
        v.rows += 1;
        let mut ctx = RowCtx {
            file,
            row: &row,
            header: &header,
            errors: Vec::new(),
            warnings: Vec::new(),
        };
        let spec = normalise_row(&mut ctx, kind, opts, templates, state);
        let ok = ctx.errors.is_empty();
        v.errors.append(&mut ctx.errors);
        v.warnings.append(&mut ctx.warnings);
        if let (true, Some(spec)) = (ok, spec) {
            v.valid += 1;
            v.specs.push(spec);
        }
    }
    if rows_here == 0 && !v.errors.iter().any(|e| e.file == file) {
        v.errors.push(file_diag(
            "no user rows, only a header: an empty export must never read as \"remove \
             everyone\""
                .into(),
        ));
    }
    Some(kind)
}

struct RowCtx<'a> {
    file: &'a str,
    row: &'a Row,
    header: &'a HeaderMap,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl RowCtx<'_> {
    fn diag(&self, column: String, message: String) -> Diagnostic {
        Diagnostic {
            file: self.file.to_string(),
            row: Some(self.row.row),
            column: Some(column),
            message,
        }
    }
    fn error(&mut self, col: Column, message: String) {
        let d = self.diag(self.header.label_of(col), message);
        self.errors.push(d);
    }
    fn warn(&mut self, col: Column, message: String) {
        let d = self.diag(self.header.label_of(col), message);
        self.warnings.push(d);
    }
    fn cell(&self, col: Column) -> &sheet::Cell {
        self.header.cell(self.row, col)
    }
    /// Runs a cell parser, recording its error; `None` when it failed.
    fn field<T>(&mut self, col: Column, r: Result<T, String>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(col, e);
                None
            }
        }
    }
}

fn normalise_row(
    ctx: &mut RowCtx<'_>,
    kind: JobKind,
    opts: &SheetOptions,
    templates: &TemplateSet,
    state: &mut State,
) -> Option<UserSpec> {
    // Values under no header at all (beyond the header or under an empty header cell).
    if !opts.ignore_unknown_columns {
        for (i, c) in ctx.row.cells.iter().enumerate() {
            if ctx.header.field_at(i).is_none() && ctx.header.is_unnamed(i) && !c.is_blank() {
                let d = ctx.diag(
                    sheet::column_letter(i),
                    format!(
                        "value {:?} in a column without a header",
                        truncate(&c.display(), 40)
                    ),
                );
                ctx.errors.push(d);
            }
        }
    }

    let upn = ctx.field(Column::Upn, cell::upn(ctx.cell(Column::Upn)));
    if let Some(u) = &upn {
        if let Some((f, r)) = state.upns.get(u) {
            let msg = format!(
                "duplicate UPN {u}: also on {} row {r} (UPNs compare case-insensitively)",
                if f == ctx.file {
                    "this sheet's".to_string()
                } else {
                    f.clone()
                }
            );
            ctx.error(Column::Upn, msg);
        } else {
            state
                .upns
                .insert(u.clone(), (ctx.file.to_string(), ctx.row.row));
        }
    }

    let template_name = ctx
        .field(
            Column::Template,
            cell::template_name(ctx.cell(Column::Template)),
        )
        .flatten();
    let template = match &template_name {
        Some(name) => match templates.get(name) {
            Some(t) => Some(t),
            None => {
                let known = templates.names();
                let msg = if known.is_empty() {
                    format!("unknown template {name:?}: no templates are loaded")
                } else {
                    format!("unknown template {name:?} (known: {})", known.join(", "))
                };
                ctx.error(Column::Template, msg);
                None
            }
        },
        None => None,
    };

    let mut w = Vec::new();
    let country = ctx.field(
        Column::Country,
        cell::country(ctx.cell(Column::Country), &mut w),
    );
    for m in w.drain(..) {
        ctx.warn(Column::Country, m);
    }
    let effective_country = match &country {
        Some(Field::Set(c)) => Some(c.clone()),
        _ => template.and_then(|t| t.country.clone()),
    };
    let auto = cell::auto_number(ctx.cell(Column::Number));
    let mut number_range = None;
    let number = match auto {
        None => ctx.field(
            Column::Number,
            cell::number(ctx.cell(Column::Number), effective_country.as_ref(), &mut w),
        ),
        Some(own) => {
            number_range = own.or_else(|| template.and_then(|t| t.number_range.clone()));
            if number_range.is_none() {
                ctx.error(
                    Column::Number,
                    "`auto` needs a number range: write auto:RANGE, or use a template that sets number_range".into(),
                );
            }
            Some(Field::Keep)
        }
    };
    for m in w.drain(..) {
        ctx.warn(Column::Number, m);
    }
    if let (Some(Field::Set(n)), Some(u)) = (&number, &upn) {
        if let Some((f, r, other)) = state.numbers.get(n) {
            let msg = format!(
                "number {n} is also given to {other} on {} row {r}",
                if f == ctx.file {
                    "this sheet's".to_string()
                } else {
                    f.clone()
                }
            );
            ctx.error(Column::Number, msg);
        } else {
            state
                .numbers
                .insert(n.clone(), (ctx.file.to_string(), ctx.row.row, u.clone()));
        }
    }

    let display_name = ctx.field(
        Column::DisplayName,
        cell::display_name(ctx.cell(Column::DisplayName)),
    );
    let vrp = ctx.field(Column::Vrp, cell::vrp(ctx.cell(Column::Vrp)));
    let groups = ctx.field(Column::Groups, cell::list(ctx.cell(Column::Groups)));
    let licenses = ctx.field(Column::Licenses, cell::list(ctx.cell(Column::Licenses)));
    let customer_licenses = ctx.field(
        Column::CustomerLicenses,
        cell::list(ctx.cell(Column::CustomerLicenses)),
    );
    let extension = ctx.field(
        Column::Extension,
        cell::extension(ctx.cell(Column::Extension)),
    );
    let action = ctx.field(Column::Action, cell::action(ctx.cell(Column::Action)));
    let account_type = match kind {
        JobKind::MsResourceAccounts => ctx
            .field(
                Column::AccountType,
                cell::account_type(ctx.cell(Column::AccountType)),
            )
            .map(Some),
        JobKind::MsUsers => Some(None),
    };

    let mut spec = UserSpec::new(upn?);
    spec.display_name = display_name?;
    spec.number = number?;
    spec.number_range = number_range;
    spec.country = country?;
    spec.vrp = vrp?;
    spec.groups = groups?;
    spec.licenses = licenses?;
    spec.customer_licenses = customer_licenses?;
    spec.extension = extension?;
    spec.action = action?;
    spec.account_type = account_type?;
    spec.origin = Some(RowOrigin {
        file: ctx.file.to_string(),
        row: ctx.row.row,
    });
    if let Some(t) = template {
        spec.template = Some(t.name.clone());
        for o in t.apply(&mut spec) {
            let col = match o.field {
                "country" => Column::Country,
                "vrp" => Column::Vrp,
                "groups" => Column::Groups,
                "licenses" => Column::Licenses,
                _ => Column::CustomerLicenses,
            };
            ctx.warn(
                col,
                format!(
                    "the row's {} {:?} overrides template {}'s {:?}",
                    o.field, o.row_value, t.name, o.template_value
                ),
            );
        }
    }
    Some(spec)
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AccountType, RowAction};
    use std::io::Write;

    fn templates() -> TemplateSet {
        TemplateSet::from_sources([
            ("base", "groups = [\"All Company\"]\nlicenses = [\"STANDARDPACK\"]"),
            (
                "be-office",
                "extends = \"base\"\ncountry = \"BE\"\nvrp = \"BE-National\"\ngroups = [\"All Company\", \"BE Office\"]\nlicenses = [\"MCOEV\", \"STANDARDPACK\"]",
            ),
        ])
        .unwrap()
    }

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::File::create(&p)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        p
    }

    fn run(text: &str) -> Validated {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "users.csv", text);
        validate_files(&[p], &SheetOptions::default(), &templates())
    }

    #[test]
    fn auto_numbers_take_their_range_from_the_cell_or_the_template() {
        let ts = TemplateSet::from_sources([("ranged", "number_range = \"NL-Utrecht\"")]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            &dir,
            "users.csv",
            "upn,number,template\n\
             a@contoso.com,AUTO,ranged\n\
             b@contoso.com,auto: MsPhoneSystem(EMEA-NL),\n\
             c@contoso.com,auto,\n",
        );
        let v = validate_files(&[p], &SheetOptions::default(), &ts);
        assert_eq!(v.specs[0].number_range.as_deref(), Some("NL-Utrecht"));
        assert_eq!(v.specs[0].number, Field::Keep);
        assert_eq!(
            v.specs[1].number_range.as_deref(),
            Some("MsPhoneSystem(EMEA-NL)")
        );
        assert_eq!(v.errors.len(), 1, "{:?}", v.errors);
        assert_eq!(v.errors[0].row, Some(4));
        assert!(v.errors[0].column.as_deref().unwrap().starts_with("number"));
        assert!(v.errors[0].message.contains("needs a number range"));
    }

    #[test]
    fn a_good_sheet_with_templates() {
        let v = run("upn,displayName,number,template,vrp,action\n\
             Ann@contoso.onmicrosoft.com,Ann,02 540 52 01,be-office,,\n\
             bob@contoso.onmicrosoft.com,Bob,+31 30 286 1201,,-,disable\n");
        assert!(v.errors.is_empty(), "{:?}", v.errors);
        assert_eq!((v.rows, v.valid), (2, 2));
        assert_eq!(v.kind, JobKind::MsUsers);
        let ann = &v.specs[0];
        assert_eq!(ann.upn.as_str(), "ann@contoso.onmicrosoft.com");
        assert_eq!(ann.number.as_set().unwrap().to_string(), "+3225405201");
        assert_eq!(ann.vrp, Field::Set("BE-National".into()));
        assert_eq!(ann.template.as_deref(), Some("be-office"));
        assert_eq!(
            ann.origin,
            Some(RowOrigin {
                file: v.files[0].clone(),
                row: 2
            })
        );
        let bob = &v.specs[1];
        assert_eq!(bob.vrp, Field::Clear);
        assert_eq!(bob.action, RowAction::Disable);
        assert_eq!(bob.country, Field::Keep);
        assert!(v
            .render_human()
            .ends_with("2 rows, 2 valid, 0 errors, 0 warnings\n"));
    }

    #[test]
    fn every_error_is_located_and_rows_are_independent() {
        let v = run("upn,number,country,template\n\
             a@contoso.onmicrosoft.com,3.2254052E+09,BE,\n\
             A@Contoso.onmicrosoft.com,,ZZ,nope\n\
             c@contoso.onmicrosoft.com,+3225405202,BE,\n\
             d@contoso.onmicrosoft.com,+32 2 540 52 02,-,\n");
        assert_eq!((v.rows, v.valid), (4, 1));
        let at = |row: u64| {
            v.errors
                .iter()
                .filter(|e| e.row == Some(row))
                .collect::<Vec<_>>()
        };
        assert!(at(2)[0].message.contains("scientific"));
        assert_eq!(at(2)[0].column.as_deref(), Some("number (B)"));
        let r3: Vec<_> = at(3).iter().map(|e| e.message.clone()).collect();
        assert!(
            r3[0].contains("duplicate UPN a@contoso.onmicrosoft.com: also on this sheet's row 2"),
            "{r3:?}"
        );
        assert!(
            r3[1].contains("unknown template \"nope\" (known: base, be-office)"),
            "{r3:?}"
        );
        assert!(r3[2].contains("\"ZZ\""), "{r3:?}");
        let r5: Vec<_> = at(5).iter().map(|e| e.message.clone()).collect();
        assert!(
            r5.iter()
                .any(|m| m.contains("number +3225405202 is also given to c@contoso")),
            "{r5:?}"
        );
        assert!(
            r5.iter().any(|m| m.contains("country cannot be cleared")),
            "{r5:?}"
        );
        let j = v.to_json();
        assert_eq!(j["errors"][0]["row"], 2);
        assert_eq!(j["errors"][0]["column"], "number (B)");
        assert_eq!(j["valid"], 1);
    }

    #[test]
    fn template_override_warns_only_on_difference() {
        let v = run("upn,template,vrp,groups\n\
             a@contoso.onmicrosoft.com,be-office,International,\n\
             b@contoso.onmicrosoft.com,be-office,BE-National,All Company;BE Office\n");
        assert!(v.errors.is_empty(), "{:?}", v.errors);
        assert_eq!(v.warnings.len(), 1, "{:?}", v.warnings);
        assert_eq!(v.warnings[0].row, Some(2));
        assert!(v.warnings[0]
            .message
            .contains("overrides template be-office's \"BE-National\""));
        assert_eq!(v.specs[0].vrp, Field::Set("International".into()));
    }

    #[test]
    fn header_only_and_empty_and_unknown_columns() {
        let v = run("upn,displayName\n");
        assert_eq!(v.errors.len(), 1);
        assert!(v.errors[0].message.contains("no user rows"));
        let v = run("");
        assert!(v.errors[0].message.contains("empty"));
        let v = run("upn,notes\na@contoso.onmicrosoft.com,x\n");
        assert_eq!(v.errors[0].row, Some(1));
        assert_eq!(v.errors[0].column.as_deref(), Some("notes (B)"));
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "u.csv", "upn,notes,\na@contoso.onmicrosoft.com,x,\n");
        let opts = SheetOptions {
            ignore_unknown_columns: true,
            ..Default::default()
        };
        let v = validate_files(&[p], &opts, &templates());
        assert!(v.errors.is_empty(), "{:?}", v.errors);
        assert_eq!(v.warnings.len(), 1);
        let v = run("upn,\na@contoso.onmicrosoft.com,stray\n");
        assert_eq!(v.errors[0].column.as_deref(), Some("B"));
        assert!(v.errors[0].message.contains("without a header"));
    }

    #[test]
    fn resource_accounts_and_mixed_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let ra = write(
            &dir,
            "ra.csv",
            "upn,displayName,accountType\n\
             cq@contoso.onmicrosoft.com,Sales queue,call-queue\n\
             aa@contoso.onmicrosoft.com,Main,\n",
        );
        let users = write(&dir, "users.csv", "upn\nb@contoso.onmicrosoft.com\n");
        let v = validate_files(
            std::slice::from_ref(&ra),
            &SheetOptions::default(),
            &templates(),
        );
        assert_eq!(v.kind, JobKind::MsResourceAccounts);
        assert_eq!(v.specs[0].account_type, Some(AccountType::CallQueue));
        assert_eq!(v.errors.len(), 1);
        assert_eq!(v.errors[0].row, Some(3));
        let v = validate_files(&[ra, users], &SheetOptions::default(), &templates());
        assert!(v.errors.iter().any(|e| e
            .message
            .contains("validate resource accounts and users separately")));
    }

    #[test]
    fn duplicates_across_files_and_unreadable_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(&dir, "a.csv", "upn\nx@contoso.onmicrosoft.com\n");
        let b = write(&dir, "b.csv", "user\nX@CONTOSO.onmicrosoft.com\n");
        let missing = dir.path().join("missing.csv");
        let v = validate_files(
            &[a.clone(), b, missing],
            &SheetOptions::default(),
            &templates(),
        );
        assert_eq!(v.files.len(), 3);
        assert_eq!(v.errors.len(), 2, "{:?}", v.errors);
        assert!(v.errors[0]
            .message
            .contains(&format!("also on {} row 2", a.display())));
        assert_eq!(v.errors[1].row, None);
        assert!(v.errors[1].message.contains("cannot read file"));
        assert!(
            validate_files(&[], &SheetOptions::default(), &templates())
                .errors
                .len()
                == 1
        );
    }
}
