//! One row on its own: its cells parsed, its number read in its country, its template
//! applied. Everything here is a pure function of the row (and the header, templates and
//! options), so rows are drafted on every core at once (see [`super::chunks`]); what
//! earlier rows decide (a UPN or number given twice) is added afterwards, in sheet order,
//! by `super::finish_row`.

use crate::model::{Attr, Diagnostic, Field, JobKind, Upn, UserSpec, E164};
use crate::sheet::cell;
use crate::sheet::header::{Column, HeaderMap};
use crate::sheet::{self, Row};
use crate::template::TemplateSet;
use std::sync::Arc;

use super::SheetOptions;

/// A row validated on its own.
pub(super) struct Draft {
    pub(super) row: u64,
    pub(super) errors: Vec<Diagnostic>,
    pub(super) warnings: Vec<Diagnostic>,
    /// The row's user when every cell parsed and specs are kept (errors may still be
    /// listed: a row is kept only when `errors` stays empty).
    pub(super) spec: Option<UserSpec>,
    /// Whether every cell parsed (whether or not the spec is kept).
    pub(super) parsed: bool,
    /// Whether the row's UPN parsed, and where among `errors` a "duplicate UPN" error
    /// goes (right after the UPN's own cell, as a reader of the row expects).
    pub(super) upn: Option<Claim<Upn>>,
    /// Whether the row sets a number (its UPN parsed too), and where its "also given
    /// to" error goes.
    pub(super) number: Option<Claim<E164>>,
}

/// A UPN or number a row claims, and where a duplicate's error goes among its errors.
pub(super) struct Claim<K> {
    /// The key, when the row has no `spec` to hold it. (A copy per kept row, made on a
    /// drafting thread and freed on the finishing one, cost more than the checks.)
    pub(super) own: Option<K>,
    pub(super) error_at: usize,
}

impl<K> Claim<K> {
    fn new(claim: Option<(K, usize)>, in_spec: bool) -> Option<Self> {
        claim.map(|(key, error_at)| Claim {
            own: (!in_spec).then_some(key),
            error_at,
        })
    }
}

impl Draft {
    /// The UPN the row claims.
    pub(super) fn upn(&self) -> Option<&Upn> {
        let claim = self.upn.as_ref()?;
        claim.own.as_ref().or(self.spec.as_ref().map(|s| &s.upn))
    }

    /// The number the row claims.
    pub(super) fn number(&self) -> Option<&E164> {
        let claim = self.number.as_ref()?;
        claim
            .own
            .as_ref()
            .or_else(|| self.spec.as_ref().and_then(|s| s.number.as_set()))
    }
}

struct RowCtx<'a> {
    file: &'a Arc<str>,
    row: &'a Row,
    header: &'a HeaderMap,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

/// Longest message kept for a row's diagnostic, in characters. Messages quote the cell,
/// which may be `max_cell_chars` long (and, through a shared string, the same long text on
/// every row): 10,000 listed errors of 32,767 characters would be 1 GB of messages.
pub(super) const MESSAGE_MAX: usize = 500;

/// A diagnostic at a row's cell, its message cut to [`MESSAGE_MAX`].
pub(super) fn diag(file: &str, row: u64, column: String, message: &str) -> Diagnostic {
    Diagnostic {
        file: file.to_string(),
        row: Some(row),
        column: Some(column),
        message: truncate(message, MESSAGE_MAX),
    }
}

impl RowCtx<'_> {
    fn diag(&self, column: String, message: String) -> Diagnostic {
        diag(self.file, self.row.row, column, &message)
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

/// Validates `row` on its own (see [`Draft`]); without `keep_spec` the row's spec is
/// dropped here, on the drafting thread, and the draft holds its keys instead.
pub(super) fn draft(
    row: &Row,
    file: &Arc<str>,
    header: &HeaderMap,
    kind: JobKind,
    opts: &SheetOptions,
    templates: &TemplateSet,
    keep_spec: bool,
) -> Draft {
    let mut ctx = RowCtx {
        file,
        row,
        header,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let mut claims = Claims::default();
    let spec = normalise(&mut ctx, kind, opts, templates, &mut claims);
    let parsed = spec.is_some();
    let spec = spec.filter(|_| keep_spec);
    // A spec holds both keys (its UPN, and its number as the row gave it).
    let in_spec = spec.is_some();
    Draft {
        row: row.row,
        errors: ctx.errors,
        warnings: ctx.warnings,
        spec,
        parsed,
        upn: Claim::new(claims.upn, in_spec),
        number: Claim::new(claims.number, in_spec),
    }
}

/// What a row claims, for the checks against earlier rows.
#[derive(Default)]
struct Claims {
    upn: Option<(Upn, usize)>,
    number: Option<(E164, usize)>,
}

fn normalise(
    ctx: &mut RowCtx<'_>,
    kind: JobKind,
    opts: &SheetOptions,
    templates: &TemplateSet,
    claims: &mut Claims,
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
        claims.upn = Some((u.clone(), ctx.errors.len()));
    }

    let template_name = ctx
        .field(
            Column::Template,
            cell::template_name(ctx.cell(Column::Template)),
        )
        .flatten();
    let template = match &template_name {
        Some(name) => {
            if let Some(t) = templates.get(name) {
                Some(t)
            } else {
                let known = templates.names();
                let msg = if known.is_empty() {
                    format!("unknown template {name:?}: no templates are loaded")
                } else {
                    format!("unknown template {name:?} (known: {})", known.join(", "))
                };
                ctx.error(Column::Template, msg);
                None
            }
        }
        None => None,
    };

    let mut w = Vec::new();
    let country = ctx.field(
        Column::Attr(Attr::Country),
        cell::country(ctx.cell(Column::Attr(Attr::Country)), &mut w),
    );
    for m in w.drain(..) {
        ctx.warn(Column::Attr(Attr::Country), m);
    }
    let effective_country = match &country {
        Some(Field::Set(c)) => Some(c.clone()),
        _ => template.and_then(|t| t.country().cloned()),
    };
    let auto = cell::auto_number(ctx.cell(Column::Attr(Attr::Number)));
    let mut number_range = None;
    let number = match auto {
        None => {
            let parsed = cell::number(
                ctx.cell(Column::Attr(Attr::Number)),
                effective_country.as_ref(),
                &mut w,
            );
            ctx.field(Column::Attr(Attr::Number), parsed)
        }
        Some(own) => {
            number_range = own.or_else(|| template.and_then(|t| t.number_range.clone()));
            if number_range.is_none() {
                ctx.error(
                    Column::Attr(Attr::Number),
                    "`auto` needs a number range: write auto:RANGE, or use a template that sets number_range".into(),
                );
            }
            Some(Field::Keep)
        }
    };
    for m in w.drain(..) {
        ctx.warn(Column::Attr(Attr::Number), m);
    }
    if let (Some(Field::Set(n)), Some(_)) = (&number, &upn) {
        claims.number = Some((n.clone(), ctx.errors.len()));
    }

    // Every other attribute's cell, parsed by its kind (the table in `model::attr`).
    // Sized once: growing it row after row was a realloc per row, on every thread.
    let mut values = Vec::with_capacity(Attr::all().count());
    let mut failed = false;
    for attr in Attr::all().filter(|a| !matches!(a, Attr::Number | Attr::Country)) {
        let col = Column::Attr(attr);
        let r = cell::attr(ctx.cell(col), attr, effective_country.as_ref(), &mut w);
        for m in w.drain(..) {
            ctx.warn(col, m);
        }
        match ctx.field(col, r) {
            Some(f) => values.push((attr, f)),
            None => failed = true,
        }
    }
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
    spec.number = number?;
    spec.number_range = number_range;
    spec.country = country?;
    if failed {
        return None;
    }
    for (attr, f) in values {
        if let Err(e) = spec.set(attr, f) {
            ctx.error(Column::Attr(attr), e.to_string());
            return None;
        }
    }
    spec.action = action?;
    spec.account_type = account_type?;
    // `spec.origin` is set when the row is finished: cloning the file name's `Arc` here
    // made every drafting thread write its one shared counter, twice a row.
    if let Some(t) = template {
        spec.template = Some(t.name.clone());
        for o in t.apply(&mut spec) {
            ctx.warn(
                Column::Attr(o.attr),
                format!(
                    "the row's {} {:?} overrides template {}'s {:?}",
                    o.field, o.row_value, t.name, o.template_value
                ),
            );
        }
    }
    Some(spec)
}

pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}
