//! Cell normalisation: one sheet cell → one typed field value of src/model.rs.
//!
//! Rules (README, "The sheet"), applied to every cell:
//! - a leading apostrophe (Excel's text marker, and what our CSV exports add to neutralise
//!   formulas) is stripped, then surrounding whitespace;
//! - empty or whitespace-only → `Field::Keep` (leave the tenant's value);
//! - exactly `-` → `Field::Clear`, refused where a field cannot be cleared.
//!
//! Phone numbers get the most care because spreadsheets damage them: an Excel numeric cell
//! is exact only as an integer below 2^53 and is read as the digits of an international
//! number (`+` restored); text in scientific notation (`3.2254052E+09`) has lost digits and
//! is always refused; a national form needs a country (the row's or its template's); every
//! number must be valid for that country according to libphonenumber's metadata (the
//! `phonenumber` crate, called under `catch_unwind` since it parses text from outside).

use super::Cell;
use crate::model::attr::{AttrValue, Kind};
use crate::model::{AccountType, Attr, Country, Field, RowAction, Upn, E164};
use std::borrow::Cow;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A cell after apostrophe stripping and trimming.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'c> {
    Keep,
    Clear,
    /// Borrowed: most cells are parsed into something else, and a copy per cell was a
    /// tenth of validation's allocations.
    Text(&'c str),
    /// A non-text cell (number, bool, date, error) as the file typed it.
    Typed(&'c Cell),
}

/// Strips one leading apostrophe and surrounding whitespace.
pub fn clean_text(s: &str) -> &str {
    let t = s.trim();
    t.strip_prefix('\'').unwrap_or(t).trim()
}

pub fn classify(cell: &Cell) -> Value<'_> {
    match cell {
        Cell::Empty => Value::Keep,
        Cell::Text(s) => match clean_text(s) {
            "" => Value::Keep,
            "-" => Value::Clear,
            t => Value::Text(t),
        },
        other => Value::Typed(other),
    }
}

/// A cell as plain text; non-text cells are rendered as the user sees them.
pub fn text(cell: &Cell) -> Result<Field<String>, String> {
    Ok(text_ref(cell)?.map(Cow::into_owned))
}

/// [`text`], borrowing the cell's text when it is text.
fn text_ref(cell: &Cell) -> Result<Field<Cow<'_, str>>, String> {
    match classify(cell) {
        Value::Keep => Ok(Field::Keep),
        Value::Clear => Ok(Field::Clear),
        Value::Text(t) => Ok(Field::Set(Cow::Borrowed(t))),
        Value::Typed(Cell::Error(e)) => Err(format!("cell holds the Excel error {e}")),
        Value::Typed(c) => Ok(Field::Set(Cow::Owned(c.display()))),
    }
}

fn no_clear(field: &str) -> String {
    format!(
        "{field} cannot be cleared: `-` is only allowed in {}",
        Attr::names_where(|i| i.clearable)
    )
}

/// An attribute's cell, parsed by the attribute's kind (`model::attr`): so a new column
/// needs no parser of its own unless its kind is new. `country` is the row's (or its
/// template's), which a national number needs; `warnings` collects readings worth a word
/// (`UK` read as `GB`, a number's lost `+`).
pub fn attr(
    cell: &Cell,
    attr: Attr,
    country: Option<&Country>,
    warnings: &mut Vec<String>,
) -> Result<Field<AttrValue>, String> {
    let info = attr.info();
    let field = match info.kind {
        Kind::Text => text(cell)?.map(AttrValue::Text),
        Kind::Digits { min, max } => digits(cell, info.name, min, max)?.map(AttrValue::Text),
        Kind::List => list(cell)?.map(AttrValue::List),
        Kind::Country => self::country(cell, warnings)?.map(AttrValue::Country),
        Kind::Number => number(cell, country, warnings)?.map(AttrValue::Number),
    };
    match field {
        Field::Clear if !info.clearable => Err(no_clear(info.name)),
        other => Ok(other),
    }
}

/// The `upn` cell: required.
pub fn upn(cell: &Cell) -> Result<Upn, String> {
    match text_ref(cell)? {
        Field::Keep => Err("upn is empty: every row needs a UPN".into()),
        Field::Clear => Err(no_clear("upn")),
        Field::Set(t) => Upn::parse(&t),
    }
}

/// The `displayName` cell.
pub fn display_name(cell: &Cell) -> Result<Field<String>, String> {
    match text(cell)? {
        Field::Clear => Err(no_clear("displayName")),
        other => Ok(other),
    }
}

/// The `vrp` cell.
pub fn vrp(cell: &Cell) -> Result<Field<String>, String> {
    text(cell)
}

/// The `country` cell; `UK` is read as `GB` with a warning.
pub fn country(cell: &Cell, warnings: &mut Vec<String>) -> Result<Field<Country>, String> {
    match text_ref(cell)? {
        Field::Keep => Ok(Field::Keep),
        Field::Clear => Err(no_clear("country")),
        Field::Set(t) => parse_country(&t, warnings).map(Field::Set),
    }
}

/// ISO 3166-1 alpha-2, uppercased; `UK` → `GB` with a warning.
pub fn parse_country(t: &str, warnings: &mut Vec<String>) -> Result<Country, String> {
    if t.trim().eq_ignore_ascii_case("uk") {
        warnings.push("country \"UK\" read as \"GB\" (the ISO 3166-1 code)".into());
        return Country::parse("GB");
    }
    Country::parse(t)
}

/// A `;`-separated list: members trimmed, empty ones dropped, order kept, duplicates
/// (case-insensitive) removed. A cell of only separators is an error rather than an empty
/// set, which would remove every member: `-` says that on purpose.
pub fn list(cell: &Cell) -> Result<Field<Vec<String>>, String> {
    match text(cell)? {
        Field::Keep => Ok(Field::Keep),
        Field::Clear => Ok(Field::Clear),
        Field::Set(t) => {
            let items = split_list(&t);
            if items.is_empty() {
                Err(format!(
                    "{t:?} lists nothing; leave the cell empty to keep, or write - to clear"
                ))
            } else {
                Ok(Field::Set(items))
            }
        }
    }
}

/// Splits, trims, drops empty members and case-insensitive duplicates, keeping order.
pub fn split_list(t: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in t.split(';') {
        let m = clean_text(m);
        if m.is_empty() || out.iter().any(|o| o.to_lowercase() == m.to_lowercase()) {
            continue;
        }
        out.push(m.to_string());
    }
    // A validated sheet keeps these per row; drop the growth slack (4 slots for 2 items).
    out.shrink_to_fit();
    out
}

/// A digits cell (`extension`: PortSIP's `[0-9]{3,64}`). A numeric Excel cell is read as
/// its digits; leading zeros it lost cannot be restored, so format the column as text
/// when the values start with 0.
fn digits(cell: &Cell, name: &str, min: usize, max: usize) -> Result<Field<String>, String> {
    match text(cell)? {
        Field::Set(t)
            if !((min..=max).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit())) =>
        {
            Err(format!(
                "{name} {:?} must be {min} to {max} digits (0-9 only)",
                truncate_chars(&t, 70)
            ))
        }
        other => Ok(other),
    }
}

fn truncate_chars(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// The `action` cell: upsert (default), disable or delete.
pub fn action(cell: &Cell) -> Result<RowAction, String> {
    match text(cell)? {
        Field::Keep => Ok(RowAction::Upsert),
        Field::Clear => Err(no_clear("action")),
        Field::Set(t) => match t.to_lowercase().as_str() {
            "upsert" => Ok(RowAction::Upsert),
            "disable" => Ok(RowAction::Disable),
            "delete" => Ok(RowAction::Delete),
            _ => Err(format!(
                "action {t:?} is not one of upsert, disable, delete"
            )),
        },
    }
}

/// The `accountType` cell of a resource-account sheet: required there.
pub fn account_type(cell: &Cell) -> Result<AccountType, String> {
    match text(cell)? {
        Field::Keep => {
            Err("accountType is empty: resource accounts need call-queue or auto-attendant".into())
        }
        Field::Clear => Err(no_clear("accountType")),
        Field::Set(t) => {
            let folded: String = t
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .flat_map(char::to_lowercase)
                .collect();
            match folded.as_str() {
                "callqueue" => Ok(AccountType::CallQueue),
                "autoattendant" => Ok(AccountType::AutoAttendant),
                _ => Err(format!(
                    "accountType {t:?} is not call-queue or auto-attendant"
                )),
            }
        }
    }
}

/// The `template` cell: a name (existence is checked by the validator).
pub fn template_name(cell: &Cell) -> Result<Option<String>, String> {
    match text(cell)? {
        Field::Keep => Ok(None),
        Field::Clear => Err(no_clear("template")),
        Field::Set(t) => Ok(Some(t)),
    }
}

/// Largest integer an f64 holds exactly (2^53).
const EXACT_F64: f64 = 9_007_199_254_740_992.0;

/// `auto` or `auto:RANGE` in a number cell (any case): the number is to be taken from a
/// named range at plan time. `Some(None)`: plain `auto` (the template names the range).
pub fn auto_number(cell: &Cell) -> Option<Option<String>> {
    let Value::Text(t) = classify(cell) else {
        return None;
    };
    let (head, rest) = match t.split_once(':') {
        Some((h, r)) => (h, Some(r.trim())),
        None => (t, None),
    };
    if !head.trim().eq_ignore_ascii_case("auto") {
        return None;
    }
    Some(rest.filter(|r| !r.is_empty()).map(str::to_string))
}

/// The `number` cell. `country` is the row's or its template's country, when known.
pub fn number(
    cell: &Cell,
    country: Option<&Country>,
    warnings: &mut Vec<String>,
) -> Result<Field<E164>, String> {
    match classify(cell) {
        Value::Keep => Ok(Field::Keep),
        Value::Clear => Ok(Field::Clear),
        Value::Text(t) => parse_number_text(t, country, warnings).map(Field::Set),
        Value::Typed(Cell::Int(i)) => numeric_cell(*i as f64, country).map(Field::Set),
        Value::Typed(Cell::Number(f)) => numeric_cell(*f, country).map(Field::Set),
        Value::Typed(Cell::DateTime(d)) => Err(format!(
            "cell holds a date ({d}), not a phone number: Excel reformatted it; format the \
             column as Text and re-enter the number"
        )),
        Value::Typed(Cell::Bool(_)) => Err("cell holds TRUE/FALSE, not a phone number".into()),
        Value::Typed(Cell::Error(e)) => Err(format!("cell holds the Excel error {e}")),
        Value::Typed(c) => Err(format!("{:?} is not a phone number", c.display())),
    }
}

/// An Excel numeric cell: the digits of an international number, when exact.
fn numeric_cell(f: f64, country: Option<&Country>) -> Result<E164, String> {
    if f.is_finite() && f <= 0.0 {
        return Err(format!(
            "numeric cell {} is not a phone number",
            super::format_f64(f)
        ));
    }
    if !f.is_finite() || f.fract() != 0.0 {
        return Err(format!(
            "numeric cell {} is not a whole number, so it cannot be a phone number; format \
             the column as Text and write +CC…",
            super::format_f64(f)
        ));
    }
    if f >= EXACT_F64 {
        return Err(format!(
            "numeric cell {} is too large to be stored exactly (digits may be lost); format \
             the column as Text and write +CC…",
            super::format_f64(f)
        ));
    }
    let digits = format!("{}", f as u64);
    validate_e164(&format!("+{digits}"), None, country)
        .map_err(|e| format!("numeric cell {digits} read as +{digits}: {e}"))
}

/// True for `3.2254052E+09`, `3,2254E+09`, `32254052e9`: what Excel shows for a number
/// too wide for its column, saved as text. Digits are gone for good.
pub fn is_scientific(t: &str) -> bool {
    let t = t.trim();
    let t = t.strip_prefix(['+', '-']).unwrap_or(t);
    let Some((mant, exp)) = t.split_once(['e', 'E']) else {
        return false;
    };
    let exp = exp.strip_prefix(['+', '-']).unwrap_or(exp);
    let (int, frac) = match mant.split_once(['.', ',']) {
        Some((i, f)) => (i, Some(f)),
        None => (mant, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(int) && frac.is_none_or(digits) && digits(exp)
}

fn parse_number_text(
    raw: &str,
    country: Option<&Country>,
    warnings: &mut Vec<String>,
) -> Result<E164, String> {
    if is_scientific(raw) {
        return Err(format!(
            "{raw:?} is in scientific notation: Excel has already dropped digits of this \
             number. Format the column as Text and re-enter the full number"
        ));
    }
    let mut s = raw.trim();
    if s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("tel:")) {
        s = &s[4..];
    }
    let (main, ext) = match s.find(';') {
        Some(i) => {
            let rest = &s[i + 1..];
            let ext = rest
                .get(..4)
                .filter(|p| p.eq_ignore_ascii_case("ext="))
                .map(|_| rest[4..].trim())
                .ok_or_else(|| format!("{raw:?}: only ;ext=NNN may follow the number"))?;
            if ext.is_empty() || ext.len() > 10 || !ext.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("{raw:?}: the extension must be 1-10 digits"));
            }
            (&s[..i], Some(ext))
        }
        None => (s, None),
    };
    let mut cleaned = String::with_capacity(main.len());
    for (i, ch) in main.chars().enumerate() {
        match ch {
            '0'..='9' => cleaned.push(ch),
            '+' if i == 0 => cleaned.push(ch),
            ' ' | '\u{a0}' | '\u{202f}' | '\t' | '-' | '\u{2010}' | '\u{2011}' | '\u{2013}'
            | '.' | '(' | ')' => {}
            _ => {
                return Err(format!(
                    "{raw:?} is not a phone number (unexpected {ch:?}); write +CC… with \
                     digits, spaces, dashes, dots or parentheses"
                ))
            }
        }
    }
    let digits = cleaned.trim_start_matches('+');
    if digits.is_empty() {
        return Err(format!("{raw:?} has no digits"));
    }
    let e164 = if cleaned.starts_with('+') {
        validate_e164_or_tenants(&cleaned, ext, country, warnings)?
    } else if let Some(rest) = digits.strip_prefix("00") {
        // International dialling prefix used across Europe: 0032… = +32…
        validate_e164_or_tenants(&format!("+{rest}"), ext, country, warnings)?
    } else if let Some(c) = country {
        match parse_national(digits, c) {
            Ok(n) => {
                // libphonenumber reads `3225405202` in BE as +32 2 540 52 02: the digits are
                // the whole international number, country code first. That is a `+` lost
                // (Excel drops it from a number typed in a cell), not a national number,
                // which would start with the trunk prefix (`02 540 52 02`).
                if n.strip_prefix('+') == Some(digits) {
                    warnings.push(lost_plus(raw, &n, c));
                }
                with_ext(&n, ext)?
            }
            Err(national_err) => {
                // The same damage where the national reading fails outright.
                if !digits.starts_with('0') {
                    if let Ok(n) = validate_e164(&format!("+{digits}"), ext, Some(c)) {
                        warnings.push(lost_plus(raw, &n.to_string(), c));
                        return Ok(n);
                    }
                }
                return Err(national_err);
            }
        }
    } else {
        return Err(format!(
            "{raw:?} has no country code: write it as +CC… or give the row (or its \
             template) a country"
        ));
    };
    Ok(e164)
}

/// The warning for a number written without its `+`, country code included.
fn lost_plus(raw: &str, read_as: &str, country: &Country) -> String {
    format!(
        "{raw:?} read as {read_as}: it starts with the country code of {country} but has no + \
         (Excel drops it from a number typed in a cell); write it as {read_as} or in the \
         national form to be sure"
    )
}

fn with_ext(number: &str, ext: Option<&str>) -> Result<E164, String> {
    match ext {
        Some(e) => E164::parse_canonical(&format!("{number};ext={e}")),
        None => E164::parse_canonical(number),
    }
}

/// Runs a phonenumber call, turning a panic inside it into an error.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f))
        .map_err(|_| "the phone number library failed on this value".to_string())
}

fn phone_id(country: &Country) -> Option<phonenumber::country::Id> {
    country.as_str().parse().ok()
}

/// Checks `+digits` with libphonenumber, for `country` when given.
fn validate_e164(
    plus_digits: &str,
    ext: Option<&str>,
    country: Option<&Country>,
) -> Result<E164, String> {
    let digits = &plus_digits[1..];
    if !(7..=15).contains(&digits.len()) {
        return Err(format!(
            "{plus_digits} has {} digits; an E.164 number has 7 to 15",
            digits.len()
        ));
    }
    let parsed = guarded(|| phonenumber::parse(None, plus_digits))?
        .map_err(|_| format!("{plus_digits} is not a phone number"))?;
    check_parsed(&parsed, plus_digits, country)?;
    with_ext(&e164(&parsed), ext)
}

/// An international number written out in full. One libphonenumber calls invalid, or one of
/// another country than the row's, may still be the tenant's own (a test range like UMP's
/// `+311111120`, a user abroad): it is read with a warning, and the plan accepts it only if
/// the tenant holds it or offers it in a range.
fn validate_e164_or_tenants(
    plus_digits: &str,
    ext: Option<&str>,
    country: Option<&Country>,
    warnings: &mut Vec<String>,
) -> Result<E164, String> {
    validate_e164(plus_digits, ext, country).or_else(|e| {
        if !(e.contains("is not a valid phone number") || e.contains("not valid for the row's country")) {
            return Err(e);
        }
        let n = with_ext(plus_digits, ext)?;
        warnings.push(format!(
            "{e}; read as {n}, which the plan accepts only if the tenant holds it or offers it in a number range"
        ));
        Ok(n)
    })
}

/// A national form (`02 540 52 00`) in a known country.
fn parse_national(digits: &str, country: &Country) -> Result<String, String> {
    let Some(id) = phone_id(country) else {
        return Err(format!(
            "{digits} has no country code and {country} has no numbering plan: write +CC…"
        ));
    };
    let parsed = guarded(|| phonenumber::parse(Some(id), digits))?
        .map_err(|_| format!("{digits:?} is not a {country} phone number"))?;
    check_parsed(&parsed, digits, Some(country))?;
    Ok(e164(&parsed))
}

/// A valid number in E.164, as libphonenumber's `Mode::E164` writes it: `+`, the country
/// code, the national number with its leading zeros. Its formatter first looks the country
/// up and matches the region's format patterns, which E.164 never uses: a third of the
/// formatting's cost, on every row. (`check_parsed` has proven the country code known; a
/// test compares the two on every example number of the metadata.)
fn e164(parsed: &phonenumber::PhoneNumber) -> String {
    format!("+{}{}", parsed.country().code(), parsed.national())
}

fn check_parsed(
    parsed: &phonenumber::PhoneNumber,
    shown: &str,
    country: Option<&Country>,
) -> Result<(), String> {
    let valid = guarded(|| phonenumber::is_valid(parsed))?;
    if !valid {
        return Err(match country {
            Some(c) => format!("{shown} is not a valid phone number (country {c})"),
            None => format!("{shown} is not a valid phone number"),
        });
    }
    if let Some(c) = country {
        if let Some(want) = phone_id(c) {
            let got = guarded(|| parsed.country().id())?;
            if got != Some(want) {
                let got = got.map_or_else(|| "?".into(), |g| g.as_ref().to_string());
                return Err(format!(
                    "{shown} is a {got} number, not valid for the row's country {c}"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be() -> Country {
        Country::parse("BE").unwrap()
    }
    fn t(s: &str) -> Cell {
        Cell::Text(s.into())
    }
    fn num(c: &Cell, country: Option<&Country>) -> Result<String, String> {
        let mut w = Vec::new();
        number(c, country, &mut w).map(|f| match f {
            Field::Set(n) => n.to_string(),
            Field::Clear => "-".into(),
            Field::Keep => "keep".into(),
        })
    }

    #[test]
    fn keep_clear_and_apostrophe() {
        assert_eq!(text(&t("  ")).unwrap(), Field::Keep);
        assert_eq!(text(&Cell::Empty).unwrap(), Field::Keep);
        assert_eq!(text(&t(" - ")).unwrap(), Field::Clear);
        assert_eq!(text(&t("'-")).unwrap(), Field::Clear);
        assert_eq!(
            text(&t("'=SUM(A1)")).unwrap(),
            Field::Set("=SUM(A1)".into())
        );
        assert_eq!(text(&Cell::Int(42)).unwrap(), Field::Set("42".into()));
        assert!(display_name(&t("-")).is_err());
        assert!(upn(&t("-")).is_err());
        assert!(upn(&t("")).is_err());
        assert_eq!(
            upn(&t("'Ann@Contoso.onmicrosoft.com")).unwrap().as_str(),
            "ann@contoso.onmicrosoft.com"
        );
    }

    #[test]
    fn numbers_in_many_spellings() {
        let want = "+3225405201";
        for s in [
            "+3225405201",
            "tel:+3225405201",
            "TEL:+32 2 540 52 01",
            "+32 (0)2 540 52 01".replace("(0)", "").as_str(),
            "+32-2-540-52-01",
            "+32.2.540.52.01",
            "'+32 2 540 52 01",
            "0032 2 540 52 01",
        ] {
            assert_eq!(num(&t(s), None).as_deref(), Ok(want), "{s}");
        }
        // national form needs a country
        assert_eq!(num(&t("02 540 52 01"), Some(&be())).as_deref(), Ok(want));
        assert!(num(&t("02 540 52 01"), None)
            .unwrap_err()
            .contains("no country code"));
        assert_eq!(
            num(&t("+32 2 540 52 01;ext=123"), Some(&be())).as_deref(),
            Ok("+3225405201;ext=123")
        );
        assert!(num(&t("+3225405201;foo=1"), None).is_err());
    }

    #[test]
    fn excel_numeric_cells() {
        assert_eq!(
            num(&Cell::Number(3225405201.0), None).as_deref(),
            Ok("+3225405201")
        );
        assert_eq!(
            num(&Cell::Int(31302861201), None).as_deref(),
            Ok("+31302861201")
        );
        assert!(num(&Cell::Number(3225405201.5), None)
            .unwrap_err()
            .contains("not a whole number"));
        assert!(num(&Cell::Number(1e17), None)
            .unwrap_err()
            .contains("too large"));
        assert!(num(&Cell::DateTime("2021-01-01".into()), None)
            .unwrap_err()
            .contains("date"));
    }

    #[test]
    fn scientific_notation_is_excel_damage() {
        for s in ["3.2254052E+09", "3,2254052E+09", "3E9", "+3.2254052e+09"] {
            assert!(is_scientific(s), "{s}");
            assert!(
                num(&t(s), Some(&be())).unwrap_err().contains("scientific"),
                "{s}"
            );
        }
        assert!(!is_scientific("+3225405201"));
        assert!(!is_scientific("E9"));
    }

    #[test]
    fn number_must_fit_country() {
        let mut w = Vec::new();
        let n = number(&t("+33140201234"), Some(&be()), &mut w).unwrap();
        assert_eq!(
            n,
            Field::Set(E164::parse_canonical("+33140201234").unwrap())
        );
        assert!(w[0].contains("not valid for the row's country BE"), "{w:?}");
        assert!(w[0].contains("holds it or offers it"), "{w:?}");
        assert_eq!(
            num(
                &t("+33 1 40 20 12 34"),
                Some(&Country::parse("FR").unwrap())
            )
            .as_deref(),
            Ok("+33140201234")
        );
        assert!(num(&t("+32 2 540"), None).is_err());
        assert!(num(&t("abc"), None).is_err());
        // A full international number libphonenumber calls invalid may be the tenant's
        // own: read, with a warning, and left to the plan to check against the tenant.
        let mut w = Vec::new();
        let n = number(
            &t("+31 1111 120"),
            Some(&Country::parse("NL").unwrap()),
            &mut w,
        );
        assert_eq!(
            n,
            Ok(Field::Set(E164::parse_canonical("+311111120").unwrap()))
        );
        assert!(
            w.len() == 1 && w[0].contains("not a valid phone number") && w[0].contains("holds it"),
            "{w:?}"
        );
        // A national form needs libphonenumber to read it at all: still an error.
        assert!(num(&t("01 111 1120"), Some(&Country::parse("NL").unwrap())).is_err());
    }

    #[test]
    fn lost_plus_in_csv_is_recovered_when_country_known() {
        let mut w = Vec::new();
        // libphonenumber itself recognises a leading country code in a national parse
        let n = number(&t("3225405201"), Some(&be()), &mut w).unwrap();
        assert_eq!(n, Field::Set(E164::parse_canonical("+3225405201").unwrap()));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with(
                "\"3225405201\" read as +3225405201: it starts with the country \
                              code of BE but has no +"
            ),
            "{w:?}"
        );
        // without a country there is no way to tell
        assert!(number(&t("3225405201"), None, &mut w).is_err());
        // national forms, written +, 00 and Excel numeric cells are not a lost +
        w.clear();
        for c in [
            t("025405201"),
            t("02 540 52 01"),
            t("+3225405201"),
            t("003225405201"),
            Cell::Number(3225405201.0),
        ] {
            number(&c, Some(&be()), &mut w).unwrap();
        }
        assert!(w.is_empty(), "{w:?}");
        // the same damage in a country whose national reading fails outright still warns
        let fr = Country::parse("FR").unwrap();
        let n = number(&t("33140201234"), Some(&fr), &mut w).unwrap();
        assert_eq!(
            n,
            Field::Set(E164::parse_canonical("+33140201234").unwrap())
        );
        assert_eq!(w.len(), 1, "{w:?}");
    }

    proptest::proptest! {
        #[test]
        fn no_cell_text_panics(text in "\\PC{0,40}", digits in "[+0-9 ().;=a-z:-]{0,30}") {
            let mut w = Vec::new();
            for s in [&text, &digits] {
                let c = Cell::Text(s.clone());
                let _ = number(&c, Some(&be()), &mut w);
                let _ = number(&c, None, &mut w);
                let _ = country(&c, &mut w);
                let _ = upn(&c);
                let _ = list(&c);
                let _ = action(&c);
                let _ = account_type(&c);
            }
        }

        #[test]
        fn numeric_cells_never_panic(f in proptest::num::f64::ANY) {
            let _ = number(&Cell::Number(f), Some(&be()), &mut Vec::new());
        }
    }

    /// The number patterns compile only when first used (`vendor/regex-cache` skips the
    /// up-front syntax check that made every start 60 ms slower), so this proves, once,
    /// that every pattern of libphonenumber's metadata compiles: a pattern that did not
    /// would fail the number it meets instead of failing here.
    #[test]
    fn every_number_pattern_compiles() {
        use phonenumber::metadata::{Descriptor, DATABASE};
        let mut patterns = 0;
        let mut check = |r: &regex_cache::CachedRegex| {
            // Compiling is matching once; a bad pattern panics.
            let _ = r.is_match("0");
            patterns += 1;
        };
        for meta in DATABASE.iter() {
            let d = meta.descriptors();
            let all: [Option<&Descriptor>; 16] = [
                Some(d.general()),
                d.fixed_line(),
                d.mobile(),
                d.toll_free(),
                d.premium_rate(),
                d.shared_cost(),
                d.personal_number(),
                d.voip(),
                d.pager(),
                d.uan(),
                d.emergency(),
                d.voicemail(),
                d.short_code(),
                d.standard_rate(),
                d.carrier(),
                d.no_international(),
            ];
            for desc in all.into_iter().flatten() {
                check(desc.national_number());
            }
            for f in meta.formats().iter().chain(meta.international_formats()) {
                check(f.pattern());
                f.leading_digits().iter().for_each(&mut check);
            }
            meta.international_prefix().into_iter().for_each(&mut check);
            meta.national_prefix_for_parsing()
                .into_iter()
                .for_each(&mut check);
            meta.leading_digits().into_iter().for_each(&mut check);
        }
        assert!(patterns > 4_000, "only {patterns} patterns seen");
    }

    /// [`e164`] writes what libphonenumber's E.164 formatter writes, for every example
    /// number of every region in its metadata that it calls valid.
    #[test]
    fn e164_matches_the_library_on_every_example_number() {
        use phonenumber::metadata::DATABASE;
        let mut compared = 0;
        for meta in DATABASE.iter() {
            let d = meta.descriptors();
            let examples = [d.general(), d.fixed_line().unwrap_or(d.general())]
                .into_iter()
                .chain(d.mobile())
                .chain(d.toll_free())
                .chain(d.voip())
                .filter_map(|desc| desc.example());
            for national in examples {
                let text = format!("+{}{national}", meta.country_code());
                let Ok(parsed) = phonenumber::parse(None, &text) else {
                    continue;
                };
                if !phonenumber::is_valid(&parsed) {
                    continue;
                }
                let library = parsed.format().mode(phonenumber::Mode::E164).to_string();
                assert_eq!(e164(&parsed), library, "{text} ({})", meta.id());
                compared += 1;
            }
        }
        assert!(compared > 500, "only {compared} numbers compared");
    }

    #[test]
    fn countries_and_lists() {
        let mut w = Vec::new();
        assert_eq!(country(&t("be"), &mut w).unwrap(), Field::Set(be()));
        assert!(w.is_empty());
        assert_eq!(
            country(&t("UK"), &mut w)
                .unwrap()
                .as_set()
                .unwrap()
                .as_str(),
            "GB"
        );
        assert_eq!(w.len(), 1);
        assert!(country(&t("XX"), &mut w).is_err());
        assert!(country(&t("Belgium"), &mut w).is_err());
        assert!(country(&t("-"), &mut w).is_err());
        assert_eq!(
            list(&t(" Sales ; ;all company;ALL COMPANY; BE Office;")).unwrap(),
            Field::Set(vec![
                "Sales".into(),
                "all company".into(),
                "BE Office".into()
            ])
        );
        assert_eq!(list(&t("-")).unwrap(), Field::Clear);
        assert!(list(&t(" ; ; ")).is_err());
    }

    #[test]
    fn actions_and_account_types() {
        assert_eq!(action(&Cell::Empty).unwrap(), RowAction::Upsert);
        assert_eq!(action(&t("Disable")).unwrap(), RowAction::Disable);
        assert_eq!(action(&t("DELETE")).unwrap(), RowAction::Delete);
        assert!(action(&t("remove")).is_err());
        assert_eq!(
            account_type(&t("call-queue")).unwrap(),
            AccountType::CallQueue
        );
        assert_eq!(
            account_type(&t("Auto Attendant")).unwrap(),
            AccountType::AutoAttendant
        );
        assert!(account_type(&Cell::Empty).is_err());
        assert!(account_type(&t("queue")).is_err());
    }
}
