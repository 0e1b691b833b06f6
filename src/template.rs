//! Templates: named bundles of defaults that a sheet row picks with its `template` column,
//! so a 5,000-row sheet does not repeat the same six values on every line. Which keys a
//! template may set, and how each is checked, is the attribute table's (`model::attr`:
//! the attributes marked `template`, today country, VRP, groups, licenses and customer
//! licenses), plus `number_range` for `number = auto`.
//!
//! A template is `templates/NAME.toml`. It may `extends` one parent (single inheritance):
//! a key the child sets replaces the parent's (lists too: they are not merged, so a child
//! lists every group it wants, as the README's example does). Cycles and missing parents are
//! errors naming the chain. Unknown keys are errors, so a misspelt `licences` is caught
//! instead of silently granting nothing.
//!
//! Application (done by the validator): a template fills only the fields a row leaves empty;
//! a row's own value, including `-` (clear), wins. This differs from Fusion's server-side
//! templates, which override by default.

use crate::model::attr::{AttrValue, Kind};
use crate::model::{Attr, Country, Field, UserSpec, E164};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Why the templates folder cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read templates from {path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("template {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("template {name:?}: {message}")]
    Invalid { name: String, message: String },
    #[error("template inheritance cycle: {}", chain.join(" → "))]
    Cycle { chain: Vec<String> },
    #[error("template {name:?} extends {parent:?}, which does not exist (chain: {})", chain.join(" → "))]
    MissingParent {
        name: String,
        parent: String,
        chain: Vec<String>,
    },
}

/// Keys of a template file besides the attributes the table marks template-settable.
const OWN_KEYS: [&str; 3] = ["description", "extends", "number_range"];

/// The file as written. Attribute values stay raw TOML until the template is resolved,
/// where they are checked by the attribute's kind.
#[derive(Debug, Clone, Default)]
struct RawTemplate {
    description: Option<String>,
    extends: Option<String>,
    number_range: Option<String>,
    values: BTreeMap<Attr, toml::Value>,
}

impl RawTemplate {
    /// Parses a file; an unknown key is an error (a misspelt `licences` must not silently
    /// grant nothing), and so is a non-text value for a text key.
    fn parse(text: &str) -> Result<RawTemplate, String> {
        let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut t = RawTemplate::default();
        for (key, value) in table {
            let text = |v: toml::Value| match v {
                toml::Value::String(s) => Ok(s),
                other => Err(format!("{key} must be text, not {}", other.type_str())),
            };
            match key.as_str() {
                "description" => t.description = Some(text(value)?),
                "extends" => t.extends = Some(text(value)?),
                "number_range" => t.number_range = Some(text(value)?),
                _ => {
                    if let Some(a) = Attr::from_name(&key).filter(|a| a.info().template) {
                        t.values.insert(a, value);
                    } else {
                        let known: Vec<&str> = OWN_KEYS[..2]
                            .iter()
                            .copied()
                            .chain(Attr::all().filter(|a| a.info().template).map(Attr::name))
                            .chain([OWN_KEYS[2]])
                            .collect();
                        return Err(format!("unknown key `{key}` (known: {})", known.join(", ")));
                    }
                }
            }
        }
        Ok(t)
    }
}

/// A template with its parents applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedTemplate {
    pub name: String,
    pub description: Option<String>,
    /// This template first, then its parent, grandparent…
    pub chain: Vec<String>,
    /// The defaults it gives, by attribute (only template-settable ones).
    pub values: BTreeMap<Attr, AttrValue>,
    /// The range a row with `number = auto` takes its number from (the backend must list
    /// ranges, e.g. UMP 365).
    pub number_range: Option<String>,
    /// The file that defines it.
    pub path: PathBuf,
}

/// A field a template and a row both set to different values (the row wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub attr: Attr,
    pub field: &'static str,
    pub row_value: String,
    pub template_value: String,
}

impl ResolvedTemplate {
    /// The default for one attribute.
    pub fn value(&self, attr: Attr) -> Option<&AttrValue> {
        self.values.get(&attr)
    }

    /// The country a template gives: a row's national number reads in it.
    pub fn country(&self) -> Option<&Country> {
        self.value(Attr::Country).and_then(AttrValue::as_country)
    }

    /// Fills the fields the spec leaves as Keep; returns the fields where the row's own
    /// value (Set or Clear) differs from the template's and so overrides it.
    pub fn apply(&self, spec: &mut UserSpec) -> Vec<Override> {
        let mut overrides = Vec::new();
        for (&attr, tv) in &self.values {
            let over = |row_value: String| Override {
                attr,
                field: attr.name(),
                row_value,
                template_value: tv.to_string(),
            };
            match spec.get(attr) {
                // Values were checked against the attribute's kind when the template was
                // resolved, so this cannot be refused.
                Field::Keep => {
                    let _ = spec.set(attr, Field::Set(tv.clone()));
                }
                Field::Set(v) if v != *tv => overrides.push(over(v.to_string())),
                Field::Set(_) => {}
                Field::Clear => overrides.push(over("-".into())),
            }
        }
        overrides
    }

    /// Human rendering for `templates show NAME`.
    pub fn render_human(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "template {}", self.name);
        if let Some(d) = &self.description {
            let _ = writeln!(s, "  description       {d}");
        }
        let _ = writeln!(s, "  chain             {}", self.chain.join(" → "));
        let _ = writeln!(s, "  file              {}", self.path.display());
        for attr in Attr::all().filter(|a| a.info().template) {
            let shown = match self.value(attr) {
                Some(AttrValue::List(l)) => l.join("; "),
                Some(v) => v.to_string(),
                None => "(not set)".into(),
            };
            let _ = writeln!(s, "  {:<18}{shown}", attr.name());
        }
        let _ = writeln!(
            s,
            "  number_range      {}",
            self.number_range.as_deref().unwrap_or("(not set)")
        );
        s
    }

    /// JSON rendering for `templates show NAME --output json`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut j = serde_json::json!({
            "name": self.name,
            "description": self.description,
            "chain": self.chain,
            "file": self.path.display().to_string(),
        });
        for attr in Attr::all().filter(|a| a.info().template) {
            j[attr.name()] = self
                .value(attr)
                .map_or(serde_json::Value::Null, AttrValue::to_json);
        }
        j["number_range"] = serde_json::json!(self.number_range);
        j
    }
}

/// Every template of a folder, resolved.
#[derive(Debug, Clone, Default)]
pub struct TemplateSet {
    templates: BTreeMap<String, ResolvedTemplate>,
}

impl TemplateSet {
    /// Loads `*.toml` from a folder and resolves inheritance. Any broken template fails
    /// the whole set: a sheet must not be applied with half its defaults.
    pub fn load_dir(dir: &Path) -> Result<TemplateSet, TemplateError> {
        let io = |e: std::io::Error| TemplateError::Io {
            path: dir.to_path_buf(),
            message: e.to_string(),
        };
        let mut raw: BTreeMap<String, (PathBuf, RawTemplate)> = BTreeMap::new();
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
            .collect();
        entries.sort();
        for path in entries {
            let Some(name) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .map(str::to_string)
            else {
                continue;
            };
            let text = std::fs::read_to_string(&path).map_err(|e| TemplateError::Io {
                path: path.clone(),
                message: e.to_string(),
            })?;
            let t = RawTemplate::parse(&text).map_err(|message| TemplateError::Parse {
                path: path.clone(),
                message,
            })?;
            if let Some(other) = raw.keys().find(|k| k.eq_ignore_ascii_case(&name)) {
                return Err(TemplateError::Invalid {
                    name,
                    message: format!("differs from template {other:?} only in case"),
                });
            }
            raw.insert(name, (path, t));
        }
        Self::resolve_all(raw)
    }

    /// Builds a set from in-memory TOML texts (name, text); for tests and embedding.
    pub fn from_sources<'a>(
        sources: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<TemplateSet, TemplateError> {
        let mut raw = BTreeMap::new();
        for (name, text) in sources {
            let path = PathBuf::from(format!("{name}.toml"));
            let t = RawTemplate::parse(text).map_err(|message| TemplateError::Parse {
                path: path.clone(),
                message,
            })?;
            raw.insert(name.to_string(), (path, t));
        }
        Self::resolve_all(raw)
    }

    fn resolve_all(
        raw: BTreeMap<String, (PathBuf, RawTemplate)>,
    ) -> Result<TemplateSet, TemplateError> {
        let mut templates = BTreeMap::new();
        for name in raw.keys() {
            templates.insert(name.clone(), resolve(name, &raw)?);
        }
        Ok(TemplateSet { templates })
    }

    /// Template names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.templates.keys().map(String::as_str).collect()
    }

    /// A resolved template by name (exact, then case-insensitive).
    pub fn get(&self, name: &str) -> Option<&ResolvedTemplate> {
        self.templates.get(name).or_else(|| {
            self.templates
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
    }

    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }

    pub fn len(&self) -> usize {
        self.templates.len()
    }

    /// Every template, sorted by name (for `templates list`).
    pub fn iter(&self) -> impl Iterator<Item = &ResolvedTemplate> {
        self.templates.values()
    }
}

fn resolve(
    name: &str,
    raw: &BTreeMap<String, (PathBuf, RawTemplate)>,
) -> Result<ResolvedTemplate, TemplateError> {
    // Walk up the chain, child first.
    let mut chain: Vec<String> = vec![name.to_string()];
    let mut links: Vec<&RawTemplate> = Vec::new();
    let mut current = name.to_string();
    loop {
        // Parents are checked before they are followed, so this only fails for a name
        // that is not in the set at all; an error rather than a panic all the same.
        let Some((_, t)) = raw.get(&current) else {
            return Err(TemplateError::MissingParent {
                name: name.to_string(),
                parent: current,
                chain,
            });
        };
        links.push(t);
        let Some(parent) = t.extends.as_deref().map(str::trim) else {
            break;
        };
        if let Some(pos) = chain.iter().position(|c| c == parent) {
            let mut cycle = chain[pos..].to_vec();
            cycle.push(parent.to_string());
            return Err(TemplateError::Cycle { chain: cycle });
        }
        if !raw.contains_key(parent) {
            let mut c = chain.clone();
            c.push(parent.to_string());
            return Err(TemplateError::MissingParent {
                name: current.clone(),
                parent: parent.to_string(),
                chain: c,
            });
        }
        chain.push(parent.to_string());
        current = parent.to_string();
    }

    let invalid = |message: String| TemplateError::Invalid {
        name: name.to_string(),
        message,
    };
    // Apply from the root down, so children replace their parents' keys.
    let mut merged = RawTemplate::default();
    for t in links.iter().rev() {
        if t.number_range.is_some() {
            merged.number_range.clone_from(&t.number_range);
        }
        for (a, v) in &t.values {
            merged.values.insert(*a, v.clone());
        }
    }
    let own = links[0];
    let mut values = BTreeMap::new();
    for (&attr, raw) in &merged.values {
        let v = template_value(attr, raw).map_err(invalid)?;
        values.insert(attr, v);
    }
    let number_range = match merged.number_range.as_deref().map(str::trim) {
        Some(r) => Some(nonempty("number_range", r).map_err(invalid)?),
        None => None,
    };
    Ok(ResolvedTemplate {
        name: name.to_string(),
        description: own.description.clone(),
        chain,
        values,
        number_range,
        path: raw.get(name).map(|(p, _)| p.clone()).unwrap_or_default(),
    })
}

/// A text key's value: templates give values, they never clear or blank one.
fn nonempty(key: &str, v: &str) -> Result<String, String> {
    match v.trim() {
        "" => Err(format!("{key} is empty; leave the key out instead")),
        "-" => Err(format!(
            "{key} = \"-\": templates cannot clear; leave the key out"
        )),
        s => Ok(s.to_string()),
    }
}

/// A template's value for `attr`, checked by the attribute's kind.
fn template_value(attr: Attr, raw: &toml::Value) -> Result<AttrValue, String> {
    let key = attr.name();
    let text = || match raw {
        toml::Value::String(s) => nonempty(key, s),
        other => Err(format!("{key} must be text, not {}", other.type_str())),
    };
    match attr.info().kind {
        Kind::Text => text().map(AttrValue::Text),
        Kind::Digits { min, max } => {
            let t = text()?;
            if (min..=max).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit()) {
                Ok(AttrValue::Text(t))
            } else {
                Err(format!("{key} {t:?} must be {min} to {max} digits"))
            }
        }
        Kind::Country => {
            let t = text()?;
            if t.eq_ignore_ascii_case("uk") {
                return Err(format!("{key} \"UK\": write \"GB\", the ISO 3166-1 code"));
            }
            Country::parse(&t).map(AttrValue::Country)
        }
        Kind::Number => E164::parse_canonical(&text()?).map(AttrValue::Number),
        Kind::List => {
            let toml::Value::Array(items) = raw else {
                return Err(format!(
                    "{key} must be a list of names, not {}",
                    raw.type_str()
                ));
            };
            let mut names = Vec::with_capacity(items.len());
            for i in items {
                match i {
                    toml::Value::String(s) if s.contains(';') => {
                        return Err(format!(
                            "{key}: write one name per list item, not ';'-separated"
                        ))
                    }
                    toml::Value::String(s) => names.push(s.as_str()),
                    other => {
                        return Err(format!(
                            "{key}: list items must be text, not {}",
                            other.type_str()
                        ))
                    }
                }
            }
            Ok(AttrValue::List(crate::sheet::cell::split_list(
                &names.join(";"),
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Upn;

    const BASE: &str = r#"
description = "Everyone"
groups = ["All Company"]
licenses = ["STANDARDPACK"]
"#;
    const BE: &str = r#"
description = "Belgian office"
extends = "base"
country = "BE"
vrp = "BE-National"
groups = ["All Company", "BE Office"]
licenses = ["MCOEV", "STANDARDPACK"]
customerLicenses = ["Call-Bundle"]
"#;

    #[test]
    fn inheritance_replaces_keys() {
        let set = TemplateSet::from_sources([
            ("base", BASE),
            ("be-office", BE),
            ("x", "extends = \"be-office\"\nvrp = \"International\""),
        ])
        .unwrap();
        assert_eq!(set.names(), vec!["base", "be-office", "x"]);
        let x = set.get("X").unwrap();
        assert_eq!(x.chain, vec!["x", "be-office", "base"]);
        assert_eq!(
            x.value(Attr::Vrp).and_then(AttrValue::as_text),
            Some("International")
        );
        assert_eq!(x.country().unwrap().as_str(), "BE");
        assert_eq!(
            x.value(Attr::Groups).and_then(AttrValue::as_list).unwrap(),
            &["All Company".to_string(), "BE Office".into()]
        );
        assert_eq!(x.description, None);
        let base = set.get("base").unwrap();
        assert_eq!(base.country(), None);
        assert!(x.render_human().contains("x → be-office → base"));
        assert_eq!(x.to_json()["customerLicenses"][0], "Call-Bundle");
    }

    #[test]
    fn cycles_missing_parents_and_unknown_keys() {
        let e = TemplateSet::from_sources([("a", "extends = \"a\"")]).unwrap_err();
        assert_eq!(e.to_string(), "template inheritance cycle: a → a");
        let e = TemplateSet::from_sources([
            ("a", "extends = \"b\""),
            ("b", "extends = \"c\""),
            ("c", "extends = \"a\""),
        ])
        .unwrap_err();
        assert!(matches!(e, TemplateError::Cycle { .. }));
        assert!(e.to_string().contains("a → b → c → a"), "{e}");
        let e = TemplateSet::from_sources([("a", "extends = \"b\""), ("b", "extends = \"zz\"")])
            .unwrap_err();
        assert!(e.to_string().contains("\"b\" extends \"zz\""), "{e}");
        assert!(e.to_string().contains("a → b → zz"), "{e}");
        let e = TemplateSet::from_sources([("a", "licences = [\"MCOEV\"]")]).unwrap_err();
        assert!(e.to_string().contains("licences"), "{e}");
        assert!(TemplateSet::from_sources([("a", "country = \"XX\"")]).is_err());
        assert!(TemplateSet::from_sources([("a", "vrp = \"-\"")]).is_err());
        assert!(TemplateSet::from_sources([("a", "groups = [\"a;b\"]")]).is_err());
        // Keys come from the attribute table: per-user attributes are no template's.
        let e = TemplateSet::from_sources([("a", "extension = \"101\"")]).unwrap_err();
        assert!(e.to_string().contains("unknown key `extension`"), "{e}");
        assert!(
            e.to_string().contains("customerLicenses, number_range"),
            "{e}"
        );
        let e = TemplateSet::from_sources([("a", "groups = \"Sales\"")]).unwrap_err();
        assert!(e.to_string().contains("groups must be a list"), "{e}");
    }

    #[test]
    fn row_values_win_and_are_reported() {
        let set = TemplateSet::from_sources([("base", BASE), ("be-office", BE)]).unwrap();
        let t = set.get("be-office").unwrap();
        let mut spec = UserSpec::new(Upn::parse("a@contoso.onmicrosoft.com").unwrap());
        spec.vrp = Field::Clear;
        spec.licenses = Field::Set(vec!["MCOEV".into(), "STANDARDPACK".into()]);
        spec.groups = Field::Set(vec!["Sales".into()]);
        let o = t.apply(&mut spec);
        assert_eq!(spec.vrp, Field::Clear);
        assert_eq!(spec.country.as_set().unwrap().as_str(), "BE");
        assert_eq!(spec.groups, Field::Set(vec!["Sales".into()]));
        assert_eq!(
            spec.customer_licenses,
            Field::Set(vec!["Call-Bundle".into()])
        );
        let fields: Vec<_> = o.iter().map(|o| o.field).collect();
        assert_eq!(fields, vec!["vrp", "groups"]);
    }

    #[test]
    fn load_dir_reads_toml_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("base.toml"), BASE).unwrap();
        std::fs::write(dir.path().join("be-office.toml"), BE).unwrap();
        std::fs::write(dir.path().join("README.md"), "not a template").unwrap();
        let set = TemplateSet::load_dir(dir.path()).unwrap();
        assert_eq!(set.len(), 2);
        assert!(set
            .get("be-office")
            .unwrap()
            .path
            .ends_with("be-office.toml"));
        std::fs::write(dir.path().join("bad.toml"), "country = ").unwrap();
        let e = TemplateSet::load_dir(dir.path()).unwrap_err();
        assert!(e.to_string().contains("bad.toml"), "{e}");
        assert!(TemplateSet::load_dir(&dir.path().join("nope")).is_err());
    }
}
