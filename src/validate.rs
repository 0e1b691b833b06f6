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
//! Memory: a validated sheet keeps one `UserSpec` per valid row (the planner needs them),
//! and as little else as possible, so a large sheet costs its specs and not much more: the
//! rows share one `Arc<str>` file name, and the duplicate checks keep only a 64-bit hash
//! per claimed UPN or number pointing at the row that claimed it (the spec, or a small
//! record for a row with errors), never a copy of the key, file name and row.
//!
//! Choices: the template-override warning is given only when the row's value differs from
//! the template's (an equal value overrides nothing); a duplicate UPN or number is reported
//! on the later row, naming the earlier one, and only the later row counts as invalid.

use crate::model::{Attr, Diagnostic, JobKind, RowOrigin, Upn, UserSpec, E164};
use crate::sheet::header::{Column, HeaderMap};
use crate::sheet::{self, ReadOptions, Row, SheetReader};
use crate::template::TemplateSet;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;

mod chunks;
mod row;

use row::Draft;

/// How to read the sheets.
#[derive(Debug, Clone, Default)]
pub struct SheetOptions {
    /// Worksheet to read in workbooks (first one when None); ignored for CSV.
    pub sheet_name: Option<String>,
    /// Unknown columns become warnings instead of errors.
    pub ignore_unknown_columns: bool,
    pub limits: sheet::Limits,
}

/// Errors (and, separately, warnings) listed in full; past these they are only counted.
/// A broken or hostile 1,000,000-row sheet would otherwise keep a message for every row:
/// measured at 2.2 GB for one error a row (BENCHMARKS.md, "Hostile sheets"), for a list no
/// one reads to its end. 10,000 still lists every error of a 5,000-row sheet.
pub const MAX_LISTED: usize = 10_000;

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
    /// The first [`MAX_LISTED`] errors.
    pub errors: Vec<Diagnostic>,
    /// The first [`MAX_LISTED`] warnings.
    pub warnings: Vec<Diagnostic>,
    /// Errors past the first [`MAX_LISTED`], counted only.
    pub errors_not_listed: u64,
    pub warnings_not_listed: u64,
}

impl Validated {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// All errors, listed or not.
    pub fn error_count(&self) -> u64 {
        self.errors.len() as u64 + self.errors_not_listed
    }

    /// All warnings, listed or not.
    pub fn warning_count(&self) -> u64 {
        self.warnings.len() as u64 + self.warnings_not_listed
    }

    fn error(&mut self, d: Diagnostic) {
        if self.errors.len() < MAX_LISTED {
            self.errors.push(d);
        } else {
            self.errors_not_listed += 1;
        }
    }

    fn warning(&mut self, d: Diagnostic) {
        if self.warnings.len() < MAX_LISTED {
            self.warnings.push(d);
        } else {
            self.warnings_not_listed += 1;
        }
    }

    /// `{"files":[..],"rows":N,"valid":N,"kind":"ms_users","errors":[{file,row,column,message}],"warnings":[..],"errors_not_listed":N,"warnings_not_listed":N}`
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
            "errors_not_listed": self.errors_not_listed,
            "warnings_not_listed": self.warnings_not_listed,
        })
    }

    /// Errors and warnings one per line, then a summary line. Control and bidi characters
    /// from the sheet are shown escaped (see [`sheet::terminal_safe`]).
    pub fn render_human(&self) -> String {
        let mut out = String::new();
        let plural = |n: u64, s: &str| format!("{n} {s}{}", if n == 1 { "" } else { "s" });
        for e in &self.errors {
            out.push_str(&format!(
                "error: {}\n",
                sheet::terminal_safe(&e.to_string())
            ));
        }
        if self.errors_not_listed > 0 {
            out.push_str(&format!(
                "error: … and {} not listed (the first {MAX_LISTED} are)\n",
                plural(self.errors_not_listed, "more error")
            ));
        }
        for w in &self.warnings {
            out.push_str(&format!(
                "warning: {}\n",
                sheet::terminal_safe(&w.to_string())
            ));
        }
        if self.warnings_not_listed > 0 {
            out.push_str(&format!(
                "warning: … and {} not listed (the first {MAX_LISTED} are)\n",
                plural(self.warnings_not_listed, "more warning")
            ));
        }
        out.push_str(&format!(
            "{}, {} valid, {}, {}\n",
            plural(self.rows, "row"),
            self.valid,
            plural(self.error_count(), "error"),
            plural(self.warning_count(), "warning"),
        ));
        out
    }
}

/// Reads, normalises and checks every file; the result merges them all. Rows are
/// validated on every core this process may use (see [`chunks::workers`]).
pub fn validate_files(
    paths: &[PathBuf],
    opts: &SheetOptions,
    templates: &TemplateSet,
) -> Validated {
    validate_on(paths, opts, templates, chunks::workers(), Keep::Specs)
}

/// [`validate_files`] for its diagnostics and counts alone: `specs` stays empty. What
/// `teamsync validate` needs: a row's spec is dropped as soon as it is made, so memory
/// holds only what the duplicate checks need (about 60 bytes per row instead of 530),
/// and the threads hand each other less.
pub fn check_files(paths: &[PathBuf], opts: &SheetOptions, templates: &TemplateSet) -> Validated {
    validate_on(paths, opts, templates, chunks::workers(), Keep::Diagnostics)
}

impl chunks::Source<sheet::SheetError> for SheetReader {
    fn next_row(&mut self) -> Option<Result<Row, sheet::SheetError>> {
        self.next()
    }
    fn recycle(&mut self, rows: &mut Vec<Row>) {
        SheetReader::recycle(self, rows);
    }
}

/// Whether validation keeps the valid rows' specs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    Specs,
    Diagnostics,
}

/// [`validate_files`] on `workers` threads: the outcome is the same for any number.
fn validate_on(
    paths: &[PathBuf],
    opts: &SheetOptions,
    templates: &TemplateSet,
    workers: usize,
    keep: Keep,
) -> Validated {
    let mut v = Validated {
        files: paths.iter().map(|p| p.display().to_string()).collect(),
        ..Validated::default()
    };
    if paths.is_empty() {
        v.error(Diagnostic {
            file: String::new(),
            row: None,
            column: None,
            message: "no sheet given".into(),
        });
        return v;
    }
    let mut state = State::default();
    let mut kinds: Vec<(Arc<str>, JobKind)> = Vec::new();
    for path in paths {
        let file: Arc<str> = Arc::from(path.display().to_string());
        let kind = validate_file(
            path,
            &file,
            opts,
            templates,
            (workers, keep),
            &mut v,
            &mut state,
        );
        if let Some(kind) = kind {
            kinds.push((file, kind));
        }
    }
    if let Some((_, first)) = kinds.first() {
        v.kind = *first;
        for (file, k) in &kinds[1..] {
            if k != first {
                v.error(Diagnostic {
                    file: file.to_string(),
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
    upns: ClaimIndex<Upn>,
    numbers: ClaimIndex<E164>,
    /// Rows with errors that still claimed a UPN (and maybe a number): later rows must
    /// still be told they repeat it, but these rows have no spec to hold the keys.
    unkept: Vec<Unkept>,
}

/// A row that claimed its UPN or number first but has no spec to hold them: a row with
/// errors, or any row when specs are not kept ([`check_files`]).
struct Unkept {
    upn: Upn,
    number: Option<E164>,
    file: Arc<str>,
    row: u64,
}

/// Who first claimed a UPN or number. The claimant's row holds the key, file and row, so
/// the index stores none of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claimant {
    /// A kept row: its index in `Validated::specs`.
    Spec(u32),
    /// A row with errors: its index in `State::unkept`.
    Unkept(u32),
}

/// Where a claimant's row is, and its UPN, for the duplicate message.
struct Site<'a> {
    file: &'a str,
    row: u64,
    upn: &'a Upn,
}

/// The rows that earlier claims point into.
#[derive(Clone, Copy)]
struct Rows<'a> {
    specs: &'a [UserSpec],
    unkept: &'a [Unkept],
}

impl<'a> Rows<'a> {
    fn site(self, c: Claimant) -> Option<Site<'a>> {
        match c {
            Claimant::Spec(i) => self.specs.get(i as usize).map(|s| Site {
                // Every spec made here has an origin; the fallback cannot show.
                file: s.origin.as_ref().map_or("", |o| &o.file),
                row: s.origin.as_ref().map_or(0, |o| o.row),
                upn: &s.upn,
            }),
            Claimant::Unkept(i) => self.unkept.get(i as usize).map(|u| Site {
                file: &u.file,
                row: u.row,
                upn: &u.upn,
            }),
        }
    }
    fn upn(self, c: Claimant) -> Option<&'a Upn> {
        self.site(c).map(|s| s.upn)
    }
    fn number(self, c: Claimant) -> Option<&'a E164> {
        match c {
            Claimant::Spec(i) => self.specs.get(i as usize).and_then(|s| s.number.as_set()),
            Claimant::Unkept(i) => self.unkept.get(i as usize).and_then(|u| u.number.as_ref()),
        }
    }
}

/// First claimant per key, keyed by a 64-bit hash of the key instead of the key itself:
/// the key is already stored once in the claimant's row, and a copy per row (with its
/// file name) was most of validate's memory on large sheets. A different key with the
/// same hash (rare; the hash is seeded per run) goes to `collided` with its own copy, so
/// the answers are exactly those of a map keyed by the value.
struct ClaimIndex<K, S = RandomState> {
    hasher: S,
    by_hash: HashMap<u64, Claimant, BuildHasherDefault<PassThrough>>,
    collided: HashMap<K, Claimant>,
}

impl<K, S: Default> Default for ClaimIndex<K, S> {
    fn default() -> Self {
        ClaimIndex {
            hasher: S::default(),
            by_hash: HashMap::default(),
            collided: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Clone, S: BuildHasher> ClaimIndex<K, S> {
    /// The first claimant of `key`; `key_of` reads a claimant's key from its row.
    fn get<'a>(&self, key: &K, key_of: impl Fn(Claimant) -> Option<&'a K>) -> Option<Claimant>
    where
        K: 'a,
    {
        let c = *self.by_hash.get(&self.hasher.hash_one(key))?;
        if key_of(c) == Some(key) {
            Some(c)
        } else {
            self.collided.get(key).copied()
        }
    }

    /// Records the first claimant of a key that `get` did not find.
    fn insert<'a>(&mut self, key: &K, who: Claimant, key_of: impl Fn(Claimant) -> Option<&'a K>)
    where
        K: 'a,
    {
        match self.by_hash.entry(self.hasher.hash_one(key)) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(who);
            }
            std::collections::hash_map::Entry::Occupied(e) => {
                if key_of(*e.get()) != Some(key) {
                    self.collided.entry(key.clone()).or_insert(who);
                }
            }
        }
    }
}

/// The identity hasher for keys that already are hashes (seeded SipHash outputs).
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl State {
    /// Records the keys a finished row is the first to claim: `kept` is its spec's index
    /// when it has one; otherwise `keys` gives its UPN and number, kept in `unkept`.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        specs: &[UserSpec],
        kept: Option<usize>,
        keys: impl FnOnce() -> Option<(Upn, Option<E164>)>,
        claims_upn: bool,
        claims_number: bool,
        file: &Arc<str>,
        row: u64,
    ) -> Result<(), String> {
        let too_many = |_| "more than 4,294,967,295 rows in one validation".to_string();
        let who = if let Some(i) = kept {
            Claimant::Spec(u32::try_from(i).map_err(too_many)?)
        } else {
            let i = u32::try_from(self.unkept.len()).map_err(too_many)?;
            let Some((upn, number)) = keys() else {
                return Ok(());
            };
            self.unkept.push(Unkept {
                upn,
                number: number.filter(|_| claims_number),
                file: Arc::clone(file),
                row,
            });
            Claimant::Unkept(i)
        };
        let State {
            upns,
            numbers,
            unkept,
        } = self;
        let rows = Rows { specs, unkept };
        if let Some(u) = rows.upn(who).filter(|_| claims_upn) {
            upns.insert(u, who, |c| rows.upn(c));
        }
        if let Some(n) = rows.number(who).filter(|_| claims_number) {
            numbers.insert(n, who, |c| rows.number(c));
        }
        Ok(())
    }
}

/// Validates one file into `v`; returns its kind when its header was usable.
fn validate_file(
    path: &std::path::Path,
    file: &Arc<str>,
    opts: &SheetOptions,
    templates: &TemplateSet,
    (workers, keep): (usize, Keep),
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
            v.error(Diagnostic {
                file: file.to_string(),
                row: e.row(),
                column: e.column().map(sheet::column_letter),
                message: e.to_string(),
            });
            return None;
        }
    };
    for w in reader.warnings() {
        v.warning(file_diag(w.clone()));
    }
    let Some(header_row) = reader.header().cloned() else {
        v.error(file_diag(
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
    for w in header_warnings.iter().map(locate) {
        v.warning(w);
    }
    if !header_errors.is_empty() {
        for e in header_errors.iter().map(locate) {
            v.error(e);
        }
        return None;
    }
    let kind = if header.has(Column::AccountType) {
        JobKind::MsResourceAccounts
    } else {
        JobKind::MsUsers
    };

    let mut rows_here = 0u64;
    let keep_spec = keep == Keep::Specs;
    let draft = |row: &Row| row::draft(row, file, &header, kind, opts, templates, keep_spec);
    let finish = |d: &mut Draft| {
        rows_here += 1;
        finish_row(d, file, &header, v, state)
    };
    if let chunks::Ended::Failed(e) = chunks::validate_rows(&mut reader, workers, &draft, finish) {
        v.error(Diagnostic {
            file: file.to_string(),
            row: e.row(),
            column: e.column().map(|c| header.label(c)),
            message: e.to_string(),
        });
    }
    if rows_here == 0 && !v.errors.iter().any(|e| *e.file == **file) {
        v.error(file_diag(
            "no user rows, only a header: an empty export must never read as \"remove \
             everyone\""
                .into(),
        ));
    }
    Some(kind)
}

/// Adds a drafted row to `v`: first the checks only earlier rows can decide (a UPN or a
/// number given twice), then the row's diagnostics, and its spec when it has no error;
/// false when the run must stop (a cap was reached).
fn finish_row(
    draft: &mut Draft,
    file: &Arc<str>,
    header: &HeaderMap,
    v: &mut Validated,
    state: &mut State,
) -> bool {
    v.rows += 1;
    // Which keys this row is the first to claim, and the errors for those it repeats.
    let mut claims_upn = false;
    let mut claims_number = false;
    let mut repeats = Vec::new();
    {
        let rows = Rows {
            specs: &v.specs,
            unkept: &state.unkept,
        };
        let sheet = |site: &Site<'_>| {
            if site.file == &**file {
                "this sheet's".to_string()
            } else {
                site.file.to_string()
            }
        };
        let row = draft.row;
        if let (Some(u), Some(claim)) = (draft.upn(), &draft.upn) {
            let first = state.upns.get(u, |c| rows.upn(c));
            if let Some(site) = first.and_then(|c| rows.site(c)) {
                let msg = format!(
                    "duplicate UPN {u}: also on {} row {} (UPNs compare case-insensitively)",
                    sheet(&site),
                    site.row
                );
                let column = header.label_of(Column::Upn);
                repeats.push((claim.error_at, row::diag(file, row, column, &msg)));
            } else {
                claims_upn = true;
            }
        }
        if let (Some(n), Some(claim)) = (draft.number(), &draft.number) {
            let first = state.numbers.get(n, |c| rows.number(c));
            if let Some(site) = first.and_then(|c| rows.site(c)) {
                let msg = format!(
                    "number {n} is also given to {} on {} row {}",
                    site.upn,
                    sheet(&site),
                    site.row
                );
                let column = header.label_of(Column::Attr(Attr::Number));
                repeats.push((claim.error_at, row::diag(file, row, column, &msg)));
            } else {
                claims_number = true;
            }
        }
    }
    // Taken field by field: moving the whole draft (a spec's 270 bytes, and it was
    // written on another core) was a tenth of the finishing thread's time.
    let row = draft.row;
    let parsed = draft.parsed;
    let mut errors = std::mem::take(&mut draft.errors);
    let warnings = std::mem::take(&mut draft.warnings);
    let spec = draft.spec.take();
    let upn = draft.upn.take();
    let number = draft.number.take();
    // Each repeat's error goes where the row's own errors put it (the UPN's first).
    for (i, (at, e)) in repeats.into_iter().enumerate() {
        errors.insert(at + i, e);
    }
    let ok = errors.is_empty();
    for e in errors {
        v.error(e);
    }
    for w in warnings {
        v.warning(w);
    }
    if ok && parsed {
        v.valid += 1;
    }
    let (kept, unkept) = match (ok, spec) {
        (true, Some(mut spec)) => {
            spec.origin = Some(RowOrigin {
                file: Arc::clone(file),
                row,
            });
            v.specs.push(spec);
            (Some(v.specs.len() - 1), None)
        }
        (_, spec) => (None, spec),
    };
    if !claims_upn && !claims_number {
        return true;
    }
    // A row not kept holds its keys itself, or in the spec it drafted.
    let keys = || match unkept {
        Some(spec) => Some((spec.upn, spec.number.into_set())),
        // A claim needs the UPN to have parsed, so it is there.
        None => upn
            .and_then(|c| c.own)
            .map(|u| (u, number.and_then(|c| c.own))),
    };
    if let Err(message) = state.record(&v.specs, kept, keys, claims_upn, claims_number, file, row) {
        v.error(Diagnostic {
            file: file.to_string(),
            row: Some(row),
            column: None,
            message,
        });
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AccountType, Field, RowAction};
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
                file: v.files[0].as_str().into(),
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

    #[test]
    fn rows_of_a_file_share_one_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let body: String = (0..50)
            .map(|i| format!("u{i}@contoso.onmicrosoft.com\n"))
            .collect();
        let a = write(&dir, "a.csv", &format!("upn\n{body}"));
        let b = write(&dir, "b.csv", "upn\nother@contoso.onmicrosoft.com\n");
        let v = validate_files(&[a, b], &SheetOptions::default(), &templates());
        assert!(v.errors.is_empty(), "{:?}", v.errors);
        let files: Vec<&Arc<str>> = v
            .specs
            .iter()
            .map(|s| &s.origin.as_ref().unwrap().file)
            .collect();
        assert_eq!(files.len(), 51);
        assert!(files[..50].iter().all(|f| Arc::ptr_eq(f, files[0])));
        assert_eq!(&**files[0], v.files[0].as_str());
        assert_eq!(&**files[50], v.files[1].as_str());
        // One allocation per file: only the specs hold it once validation is done.
        assert_eq!(Arc::strong_count(files[0]), 50);
        assert_eq!(Arc::strong_count(files[50]), 1);
    }

    #[test]
    fn duplicates_of_rows_with_errors_are_still_found() {
        let dir = tempfile::tempdir().unwrap();
        // Row 2 has an error (bad country) but claims its UPN and number first.
        let a = write(
            &dir,
            "a.csv",
            "upn,number,country\n\
             x@contoso.onmicrosoft.com,+3225405201,ZZ\n\
             y@contoso.onmicrosoft.com,+3225405201,BE\n",
        );
        let b = write(
            &dir,
            "b.csv",
            "upn,number\nX@contoso.onmicrosoft.com,+3225405202\nz@contoso.onmicrosoft.com,+3225405202\n",
        );
        let v = validate_files(&[a.clone(), b], &SheetOptions::default(), &templates());
        let msgs: Vec<(Option<u64>, &str)> = v
            .errors
            .iter()
            .map(|e| (e.row, e.message.as_str()))
            .collect();
        assert_eq!(msgs.len(), 4, "{msgs:?}");
        assert!(msgs[1].1.contains(
            "number +3225405201 is also given to x@contoso.onmicrosoft.com on this sheet's row 2"
        ));
        assert_eq!(msgs[1].0, Some(3));
        assert!(msgs[2].1.contains(&format!(
            "duplicate UPN x@contoso.onmicrosoft.com: also on {} row 2",
            a.display()
        )));
        // b.csv row 2 had a duplicate UPN but claimed its number: row 3 repeats it.
        assert!(msgs[3].1.contains(
            "number +3225405202 is also given to x@contoso.onmicrosoft.com on this sheet's row 2"
        ));
        assert_eq!(v.specs.len(), 0);
    }

    /// Every key hashes alike, so every claim after the first is a collision.
    #[derive(Default)]
    struct Constant;
    impl Hasher for Constant {
        fn finish(&self) -> u64 {
            7
        }
        fn write(&mut self, _: &[u8]) {}
    }

    #[test]
    fn long_cells_make_short_messages() {
        let v = run(&format!(
            "upn,action\na@contoso.com,{}\n",
            "x".repeat(30_000)
        ));
        assert_eq!(v.errors.len(), 1);
        let m = &v.errors[0].message;
        assert_eq!(m.chars().count(), row::MESSAGE_MAX + 1, "{}", &m[..80]);
        assert!(m.starts_with("action \"xxx") && m.ends_with('…'));
    }

    #[test]
    fn errors_past_the_listed_ones_are_counted_not_kept() {
        let mut text = String::from("upn,displayName\n");
        for i in 0..MAX_LISTED + 50 {
            text.push_str(&format!("not-an-upn-{i},User {i}\n"));
        }
        let v = run(&text);
        assert_eq!(v.errors.len(), MAX_LISTED);
        assert_eq!(v.errors_not_listed, 50);
        assert_eq!(v.error_count(), MAX_LISTED as u64 + 50);
        assert!(!v.is_ok());
        // the listed ones are the first rows, in order
        assert_eq!(v.errors[0].row, Some(2));
        assert_eq!(v.errors[MAX_LISTED - 1].row, Some(MAX_LISTED as u64 + 1));
        let human = v.render_human();
        assert!(
            human.contains("error: … and 50 more errors not listed (the first 10000 are)"),
            "{}",
            &human[human.len().saturating_sub(300)..]
        );
        assert!(human.ends_with(&format!(
            "{} rows, 0 valid, {} errors, 0 warnings\n",
            MAX_LISTED + 50,
            MAX_LISTED + 50
        )));
        let json = v.to_json();
        assert_eq!(json["errors_not_listed"], 50);
        assert_eq!(json["errors"].as_array().unwrap().len(), MAX_LISTED);
    }

    #[test]
    fn claim_index_answers_exactly_despite_hash_collisions() {
        let keys: Vec<String> = ["a", "b", "c"]
            .iter()
            .map(std::string::ToString::to_string)
            .collect();
        let key_of = |c: Claimant| match c {
            Claimant::Spec(i) | Claimant::Unkept(i) => keys.get(i as usize),
        };
        let mut idx: ClaimIndex<String, BuildHasherDefault<Constant>> = ClaimIndex::default();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(idx.get(k, key_of), None);
            idx.insert(k, Claimant::Spec(i as u32), key_of);
        }
        assert_eq!(idx.collided.len(), 2);
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(idx.get(k, key_of), Some(Claimant::Spec(i as u32)));
        }
        assert_eq!(idx.get(&"d".to_string(), key_of), None);
        // A second claim of a key keeps the first claimant.
        idx.insert(&keys[1], Claimant::Unkept(9), key_of);
        assert_eq!(idx.get(&keys[1], key_of), Some(Claimant::Spec(1)));
    }

    /// Peak resident set of this process in KiB (Linux), `None` elsewhere.
    fn peak_kib() -> Option<u64> {
        std::fs::read_to_string("/proc/self/status")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    }

    /// Rows are validated a chunk at a time on as many threads as asked; errors still come
    /// in row order, each at its own row and column, across chunk boundaries, and every
    /// number of threads gives exactly the sequential outcome: the same errors (duplicates
    /// found against rows of earlier chunks and earlier files included), warnings and
    /// users, in the same order.
    #[test]
    fn parallel_validation_keeps_errors_in_order_and_located() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.csv");
        let rows = chunks::BATCH_ROWS * 2 + 123;
        {
            let mut w = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
            writeln!(w, "upn,displayName,number,country").unwrap();
            for i in 0..rows {
                let number = if i % 997 == 0 {
                    "12ab".to_string()
                } else {
                    format!("02 5{i:06}")
                };
                writeln!(w, "user{i:06}@contoso.com,User {i},{number},BE").unwrap();
            }
        }
        let v = validate_on(
            std::slice::from_ref(&path),
            &SheetOptions::default(),
            &TemplateSet::default(),
            4,
            Keep::Specs,
        );
        let bad: Vec<u64> = (0..rows as u64)
            .filter(|i| i % 997 == 0)
            .map(|i| i + 2)
            .collect();
        let got: Vec<u64> = v.errors.iter().filter_map(|e| e.row).collect();
        assert_eq!(got, bad, "{:?}", v.errors.first());
        assert!(
            v.errors
                .iter()
                .all(|e| e.column.as_deref() == Some("number (C)")),
            "{:?}",
            v.errors.first()
        );
        assert_eq!(v.valid as usize, rows - bad.len());

        // A second file repeating users and numbers of the first one's chunks, with its
        // own duplicates a chunk apart, warnings, templates and rows with several errors.
        let second = dir.path().join("more.csv");
        {
            let mut w = std::io::BufWriter::new(std::fs::File::create(&second).unwrap());
            writeln!(w, "upn,displayName,number,country,template,vrp").unwrap();
            for i in 0..chunks::BATCH_ROWS + 700 {
                let (upn, number) = match i % 5 {
                    0 => (
                        format!("USER{:06}@contoso.com", i * 3),
                        format!("+32 2 5{i:06}"),
                    ),
                    1 => (format!("new{i}@contoso.com"), format!("+3225{:06}", i * 7)),
                    2 => (
                        format!("new{}@contoso.com", i.saturating_sub(chunks::BATCH_ROWS)),
                        "12ab".into(),
                    ),
                    3 => (
                        format!("x{i}@contoso.com"),
                        format!("0{:09}", 470_000_000 + i),
                    ),
                    _ => ("not a upn".to_string(), format!("+3225{:06}", i * 7 - 7)),
                };
                let (template, vrp) = match i % 7 {
                    0 => ("be-office", "BE-Other"),
                    1 => ("be-office", ""),
                    _ => ("", ""),
                };
                writeln!(w, "{upn},Name {i},{number},BE,{template},{vrp}").unwrap();
            }
        }
        let both = [path, second];
        let show = |v: &Validated| {
            let d = |d: &Diagnostic| format!("{d}");
            (
                v.errors.iter().map(d).collect::<Vec<_>>(),
                v.warnings.iter().map(d).collect::<Vec<_>>(),
                v.specs.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>(),
                (v.rows, v.valid),
            )
        };
        let opts = SheetOptions::default();
        let one = validate_on(&both, &opts, &templates(), 1, Keep::Specs);
        assert!(one
            .errors
            .iter()
            .any(|e| e.message.contains("duplicate UPN")));
        assert!(one
            .errors
            .iter()
            .any(|e| e.message.contains("also given to")));
        assert!(!one.warnings.is_empty());
        assert_eq!(one.specs.len() as u64, one.valid);
        for workers in [1, 2, 3, 4] {
            let many = validate_on(&both, &opts, &templates(), workers, Keep::Specs);
            assert!(
                show(&one) == show(&many),
                "{workers} threads differ from one"
            );
            // Without specs: the same diagnostics and counts, no specs.
            let checked = validate_on(&both, &opts, &templates(), workers, Keep::Diagnostics);
            assert!(checked.specs.is_empty());
            let (errors, warnings, _, counts) = show(&one);
            let (e, w, _, c) = show(&checked);
            assert!(
                (errors, warnings, counts) == (e, w, c),
                "{workers} threads without specs differ"
            );
        }
    }

    const MEMORY_CHILD_ROWS: &str = "TEAMSYNC_VALIDATE_MEMORY_ROWS";

    /// Run only as the child of `memory_per_row_stays_bounded`: validates a generated
    /// sheet of the given size and prints the peak RSS growth it caused.
    #[test]
    #[ignore = "child process of memory_per_row_stays_bounded"]
    fn memory_child() {
        let Some(rows) = std::env::var(MEMORY_CHILD_ROWS)
            .ok()
            .and_then(|r| r.parse::<usize>().ok())
        else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.csv");
        {
            let mut w = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
            writeln!(w, "upn,displayName,number,country,licenses").unwrap();
            for i in 0..rows {
                writeln!(
                    w,
                    "user{i:06}@contoso.com,User {i},+322{},BE,STANDARDPACK;MCOEV",
                    5_000_000 + i
                )
                .unwrap();
            }
        }
        let before = peak_kib().unwrap();
        let v = validate_files(&[path], &SheetOptions::default(), &TemplateSet::default());
        let after = peak_kib().unwrap();
        assert_eq!(v.valid as usize, rows, "{:?}", v.errors.first());
        println!("VALIDATE_MEMORY {} {}", rows, after.saturating_sub(before));
    }

    /// Memory per kept row, measured as peak RSS in child processes (one per size, so
    /// neither sees the other's heap) and taken as the slope between two sizes, so fixed
    /// costs cancel. Memory does not depend on machine load, only on what is kept. In a
    /// debug build this measured ~1,400 bytes per row before the file name was shared and
    /// the duplicate maps stopped copying keys, ~570 after (mostly the specs themselves,
    /// which the planner needs).
    #[test]
    fn memory_per_row_stays_bounded() {
        if peak_kib().is_none() {
            eprintln!("no /proc/self/status VmHWM here: memory bound not checked");
            return;
        }
        let grown = |rows: usize| -> u64 {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "validate::tests::memory_child",
                    "--exact",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(MEMORY_CHILD_ROWS, rows.to_string())
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "child failed: {text}");
            text.lines()
                // The harness may print "test … ... " on the same line first.
                .find_map(|l| l.split("VALIDATE_MEMORY ").nth(1))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse().ok())
                .unwrap_or_else(|| panic!("no measurement in: {text}"))
        };
        let (small, large) = (20_000u64, 60_000u64);
        let (a, b) = (grown(small as usize), grown(large as usize));
        let per_row = b.saturating_sub(a) * 1024 / (large - small);
        eprintln!("validate: {a} KiB at {small} rows, {b} KiB at {large}: {per_row} B/row");
        assert!(
            per_row < 750,
            "validate keeps {per_row} bytes per row ({a} KiB at {small} rows, {b} KiB at {large})"
        );
    }
}
