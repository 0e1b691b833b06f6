//! Templates: named bundles of defaults (country, VRP, groups, licenses) that a sheet row
//! picks with its `template` column, so a 5,000-row sheet does not repeat the same six
//! values on every line.
//!
//! A template is `templates/NAME.toml`. It may `extends` one parent (single inheritance):
//! a key the child sets replaces the parent's (lists too: they are not merged, so a child
//! lists every group it wants, as DESIGN.md's example does). Cycles and missing parents are
//! errors naming the chain. Unknown keys are errors, so a misspelt `licences` is caught
//! instead of silently granting nothing.
//!
//! Application (done by the validator): a template fills only the fields a row leaves empty;
//! a row's own value, including `-` (clear), wins. This differs from Fusion's server-side
//! templates, which override by default.

use crate::model::{Country, Field, UserSpec};
use serde::Deserialize;
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

/// The file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    description: Option<String>,
    extends: Option<String>,
    country: Option<String>,
    vrp: Option<String>,
    groups: Option<Vec<String>>,
    licenses: Option<Vec<String>>,
    #[serde(rename = "customerLicenses")]
    customer_licenses: Option<Vec<String>>,
    number_range: Option<String>,
}

/// A template with its parents applied.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ResolvedTemplate {
    pub name: String,
    pub description: Option<String>,
    /// This template first, then its parent, grandparent…
    pub chain: Vec<String>,
    pub country: Option<Country>,
    pub vrp: Option<String>,
    pub groups: Option<Vec<String>>,
    pub licenses: Option<Vec<String>>,
    #[serde(rename = "customerLicenses")]
    pub customer_licenses: Option<Vec<String>>,
    /// The range a row with `number = auto` takes its number from (the backend must list
    /// ranges, e.g. UMP 365).
    pub number_range: Option<String>,
    /// The file that defines it.
    pub path: PathBuf,
}

/// A field a template and a row both set to different values (the row wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub field: &'static str,
    pub row_value: String,
    pub template_value: String,
}

impl ResolvedTemplate {
    /// Fills the fields the spec leaves as Keep; returns the fields where the row's own
    /// value (Set or Clear) differs from the template's and so overrides it.
    pub fn apply(&self, spec: &mut UserSpec) -> Vec<Override> {
        let mut overrides = Vec::new();
        fill(
            &mut spec.country,
            self.country.as_ref(),
            "country",
            |c| c.to_string(),
            &mut overrides,
        );
        fill(
            &mut spec.vrp,
            self.vrp.as_ref(),
            "vrp",
            Clone::clone,
            &mut overrides,
        );
        let join = |v: &Vec<String>| v.join(";");
        fill(
            &mut spec.groups,
            self.groups.as_ref(),
            "groups",
            join,
            &mut overrides,
        );
        fill(
            &mut spec.licenses,
            self.licenses.as_ref(),
            "licenses",
            join,
            &mut overrides,
        );
        fill(
            &mut spec.customer_licenses,
            self.customer_licenses.as_ref(),
            "customerLicenses",
            join,
            &mut overrides,
        );
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
        let opt = |v: Option<String>| v.unwrap_or_else(|| "(not set)".into());
        let list = |v: &Option<Vec<String>>| opt(v.as_ref().map(|l| l.join("; ")));
        let _ = writeln!(
            s,
            "  country           {}",
            opt(self.country.as_ref().map(|c| c.to_string()))
        );
        let _ = writeln!(s, "  vrp               {}", opt(self.vrp.clone()));
        let _ = writeln!(s, "  groups            {}", list(&self.groups));
        let _ = writeln!(s, "  licenses          {}", list(&self.licenses));
        let _ = writeln!(s, "  customerLicenses  {}", list(&self.customer_licenses));
        let _ = writeln!(s, "  number_range      {}", opt(self.number_range.clone()));
        s
    }

    /// JSON rendering for `templates show NAME --output json`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "description": self.description,
            "chain": self.chain,
            "file": self.path.display().to_string(),
            "country": self.country.as_ref().map(|c| c.to_string()),
            "vrp": self.vrp,
            "groups": self.groups,
            "licenses": self.licenses,
            "customerLicenses": self.customer_licenses,
            "number_range": self.number_range,
        })
    }
}

fn fill<T: Clone + PartialEq>(
    field: &mut Field<T>,
    template: Option<&T>,
    name: &'static str,
    show: impl Fn(&T) -> String,
    overrides: &mut Vec<Override>,
) {
    let Some(tv) = template else { return };
    match field {
        Field::Keep => *field = Field::Set(tv.clone()),
        Field::Set(v) if v != tv => overrides.push(Override {
            field: name,
            row_value: show(v),
            template_value: show(tv),
        }),
        Field::Set(_) => {}
        Field::Clear => overrides.push(Override {
            field: name,
            row_value: "-".into(),
            template_value: show(tv),
        }),
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
            let t: RawTemplate = toml::from_str(&text).map_err(|e| TemplateError::Parse {
                path: path.clone(),
                message: e.to_string(),
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
            let t: RawTemplate = toml::from_str(text).map_err(|e| TemplateError::Parse {
                path: path.clone(),
                message: e.to_string(),
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
        macro_rules! take {
            ($f:ident) => {
                if t.$f.is_some() {
                    merged.$f = t.$f.clone();
                }
            };
        }
        take!(country);
        take!(vrp);
        take!(groups);
        take!(licenses);
        take!(customer_licenses);
        take!(number_range);
    }
    let own = links[0];
    let country = match &merged.country {
        Some(c) => Some(Country::parse(c).map_err(|e| {
            invalid(if c.trim().eq_ignore_ascii_case("uk") {
                "country \"UK\": write \"GB\", the ISO 3166-1 code".into()
            } else {
                e
            })
        })?),
        None => None,
    };
    let nonempty = |key: &str, v: &Option<String>| -> Result<Option<String>, TemplateError> {
        match v.as_deref().map(str::trim) {
            Some("") => Err(invalid(format!(
                "{key} is empty; leave the key out instead"
            ))),
            Some("-") => Err(invalid(format!(
                "{key} = \"-\": templates cannot clear; leave the key out"
            ))),
            Some(s) => Ok(Some(s.to_string())),
            None => Ok(None),
        }
    };
    let list = |key: &str, v: &Option<Vec<String>>| -> Result<Option<Vec<String>>, TemplateError> {
        let Some(items) = v else { return Ok(None) };
        let joined = items.join(";");
        if items.iter().any(|i| i.contains(';')) {
            return Err(invalid(format!(
                "{key}: write one name per list item, not ';'-separated"
            )));
        }
        let cleaned = crate::sheet::cell::split_list(&joined);
        Ok(Some(cleaned))
    };
    Ok(ResolvedTemplate {
        name: name.to_string(),
        description: own.description.clone(),
        chain,
        country,
        vrp: nonempty("vrp", &merged.vrp)?,
        groups: list("groups", &merged.groups)?,
        licenses: list("licenses", &merged.licenses)?,
        customer_licenses: list("customerLicenses", &merged.customer_licenses)?,
        number_range: nonempty("number_range", &merged.number_range)?,
        path: raw.get(name).map(|(p, _)| p.clone()).unwrap_or_default(),
    })
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
        assert_eq!(x.vrp.as_deref(), Some("International"));
        assert_eq!(x.country.as_ref().unwrap().as_str(), "BE");
        assert_eq!(
            x.groups.as_ref().unwrap(),
            &vec!["All Company".to_string(), "BE Office".into()]
        );
        assert_eq!(x.description, None);
        let base = set.get("base").unwrap();
        assert_eq!(base.country, None);
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
