//! The effective role × feature matrix of a role model, per account type, and its renderings
//! (terminal table, Markdown, CSV, HTML) for `portcullis matrix` and the product owner's page.
//!
//! Input: a `RoleModel`. Output: `Matrix`, one table per account type (or one table when the
//! folder declares none), plus one for permission groups. Cells say how a role holds a feature
//! (`yes`, `own`, `add-on`, `-`) and mark conditional ones (a `when` condition) with `*`.

use std::fmt::Write as _;

use serde::Serialize;

use crate::roles::model::{Cell, Feature, RoleModel};

/// One cell.
#[derive(Debug, Clone, Serialize)]
pub struct MatrixCell {
    /// How the role holds the feature.
    pub access: Cell,
    /// Held only when the feature's `when` condition holds.
    pub conditional: bool,
    /// The compiled policy that grants it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

impl MatrixCell {
    /// Short text: `yes`, `own`, `add-on`, `-`, with `*` when conditional.
    pub fn label(&self) -> String {
        let base = match self.access {
            Cell::Yes => "yes",
            Cell::Own => "own",
            Cell::Addon => "add-on",
            Cell::No => "-",
        };
        if self.conditional && self.access != Cell::No {
            format!("{base}*")
        } else {
            base.to_owned()
        }
    }
}

/// One feature's row.
#[derive(Debug, Clone, Serialize)]
pub struct MatrixRow {
    /// Feature name.
    pub feature: String,
    /// Feature title.
    pub title: String,
    /// Line of `roles.toml` where the feature is declared.
    pub line: usize,
    /// The Cedar actions it covers.
    pub actions: Vec<String>,
    /// One cell per column.
    pub cells: Vec<MatrixCell>,
}

impl MatrixRow {
    /// The row of feature `f`, with its cells.
    fn of(f: &Feature, cells: Vec<MatrixCell>) -> Self {
        MatrixRow {
            feature: f.name.clone(),
            title: f.title.clone(),
            line: f.location.line,
            actions: f.actions.iter().map(|a| a.value.clone()).collect(),
            cells,
        }
    }
}

/// One table.
#[derive(Debug, Clone, Serialize)]
pub struct MatrixTable {
    /// Account type name (`*` when the folder has none; `groups` for permission groups).
    pub account_type: String,
    /// Its title.
    pub title: String,
    /// Column names (roles, highest rank first, or permission groups).
    pub columns: Vec<String>,
    /// Column titles.
    pub column_titles: Vec<String>,
    /// Rows, in file order.
    pub rows: Vec<MatrixRow>,
}

/// The whole matrix.
#[derive(Debug, Clone, Serialize)]
pub struct Matrix {
    /// The tables.
    pub tables: Vec<MatrixTable>,
}

/// Output formats of `portcullis matrix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned text for a terminal.
    Table,
    /// Markdown tables.
    Markdown,
    /// CSV, one line per cell: `account_type,role,feature,access`.
    Csv,
    /// A standalone HTML page.
    Html,
    /// JSON.
    Json,
}

impl Matrix {
    /// Computes the matrix of a model.
    pub fn of(m: &RoleModel) -> Self {
        let mut tables = Vec::new();
        let types: Vec<(String, String, Vec<String>)> = if m.account_types.is_empty() {
            vec![(
                "*".to_owned(),
                "All users".to_owned(),
                m.roles.iter().map(|r| r.name.clone()).collect(),
            )]
        } else {
            m.account_types
                .iter()
                .map(|a| (a.name.clone(), a.title.clone(), a.roles.clone()))
                .collect()
        };
        for (name, title, roles) in types {
            let rows = m
                .features
                .iter()
                .map(|f| {
                    let cells = roles
                        .iter()
                        .map(|r| {
                            let kind = (name != "*").then_some(name.as_str());
                            let access = m.cell_for(kind, r, f);
                            let policy = match access {
                                Cell::Yes => Some(format!("feature.{}", f.name)),
                                Cell::Own => Some(format!("feature.{}.own", f.name)),
                                Cell::Addon => Some(format!("feature.{}.addon", f.name)),
                                Cell::No => None,
                            };
                            MatrixCell {
                                access,
                                conditional: f.when.is_some(),
                                policy,
                            }
                        })
                        .collect();
                    MatrixRow::of(f, cells)
                })
                .collect();
            let column_titles = roles
                .iter()
                .map(|r| m.role(r).map_or(r.clone(), |x| x.title.clone()))
                .collect();
            tables.push(MatrixTable {
                account_type: name,
                title,
                columns: roles,
                column_titles,
                rows,
            });
        }
        if !m.groups.is_empty() {
            let rows = m
                .features
                .iter()
                .map(|f| {
                    let cells = m
                        .groups
                        .iter()
                        .map(|g| {
                            let held = g.features.contains(&f.name);
                            MatrixCell {
                                access: if held { Cell::Yes } else { Cell::No },
                                conditional: held && f.when.is_some(),
                                policy: held.then(|| format!("feature.{}.group", f.name)),
                            }
                        })
                        .collect();
                    MatrixRow::of(f, cells)
                })
                .collect();
            tables.push(MatrixTable {
                account_type: "groups".to_owned(),
                title: "Permission groups".to_owned(),
                columns: m.groups.iter().map(|g| g.name.clone()).collect(),
                column_titles: m
                    .groups
                    .iter()
                    .map(|g| {
                        if g.default {
                            format!("{} (default)", g.title)
                        } else {
                            g.title.clone()
                        }
                    })
                    .collect(),
                rows,
            });
        }
        Matrix { tables }
    }

    /// Renders in a format.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Table => self.table(),
            Format::Markdown => self.markdown(),
            Format::Csv => self.csv(),
            Format::Html => self.html(),
            Format::Json => serde_json::to_string_pretty(self).unwrap_or_default(),
        }
    }

    fn table(&self) -> String {
        let mut out = String::new();
        for t in &self.tables {
            let _ = writeln!(out, "{} ({})", t.title, t.account_type);
            let fw = t
                .rows
                .iter()
                .map(|r| r.title.chars().count())
                .max()
                .unwrap_or(7)
                .max(7);
            let widths: Vec<usize> = t
                .column_titles
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let cells = t
                        .rows
                        .iter()
                        .filter_map(|r| r.cells.get(i))
                        .map(|x| x.label().chars().count());
                    cells.max().unwrap_or(0).max(c.chars().count()).max(6)
                })
                .collect();
            let _ = write!(out, "{:fw$}", "Feature");
            for (c, w) in t.column_titles.iter().zip(&widths) {
                let _ = write!(out, "  {c:w$}");
            }
            out.push('\n');
            let _ = write!(out, "{}", "-".repeat(fw));
            for w in &widths {
                let _ = write!(out, "  {}", "-".repeat(*w));
            }
            out.push('\n');
            for r in &t.rows {
                let _ = write!(out, "{:fw$}", r.title);
                for (c, w) in r.cells.iter().zip(&widths) {
                    let _ = write!(out, "  {:w$}", c.label());
                }
                out.push('\n');
            }
            out.push('\n');
        }
        out.push_str("yes: on every record of the company; own: on records the user owns; add-on: when granted to the user; *: only when the feature's condition holds\n");
        out
    }

    fn markdown(&self) -> String {
        let mut out = String::new();
        for t in &self.tables {
            let _ = writeln!(out, "### {} (`{}`)\n", t.title, t.account_type);
            let _ = writeln!(out, "| Feature | {} |", t.column_titles.join(" | "));
            let _ = writeln!(out, "|---|{}", "---|".repeat(t.columns.len()));
            for r in &t.rows {
                let cells: Vec<String> = r.cells.iter().map(MatrixCell::label).collect();
                let _ = writeln!(out, "| {} | {} |", r.title.replace('|', "\\|"), cells.join(" | "));
            }
            out.push('\n');
        }
        out
    }

    fn csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let _ = w.write_record(["account_type", "role", "feature", "access"]);
        for t in &self.tables {
            for r in &t.rows {
                for (col, c) in t.columns.iter().zip(&r.cells) {
                    let _ = w.write_record([t.account_type.as_str(), col, &r.feature, &c.label()]);
                }
            }
        }
        String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
    }

    /// The tables as HTML fragments (used by the standalone page and the server's page).
    pub fn html_tables(&self) -> String {
        let mut out = String::new();
        for t in &self.tables {
            let _ = writeln!(
                out,
                "<section class=\"matrix\" data-account-type=\"{}\">\n<h2>{} <code>{}</code></h2>\n<table>\n<thead><tr><th>Feature</th>",
                esc(&t.account_type),
                esc(&t.title),
                esc(&t.account_type)
            );
            for (c, title) in t.columns.iter().zip(&t.column_titles) {
                let _ = write!(out, "<th data-role=\"{}\">{}</th>", esc(c), esc(title));
            }
            out.push_str("</tr></thead>\n<tbody>\n");
            for r in &t.rows {
                let _ = write!(
                    out,
                    "<tr data-feature=\"{}\"><th title=\"actions: {}; roles.toml line {}\">{}</th>",
                    esc(&r.feature),
                    esc(&r.actions.join(", ")),
                    r.line,
                    esc(&r.title)
                );
                for (col, c) in t.columns.iter().zip(&r.cells) {
                    let title = match &c.policy {
                        Some(p) => format!("policy {p}; roles.toml line {}", r.line),
                        None => "not held".to_owned(),
                    };
                    let class = format!("{:?}", c.access).to_lowercase()
                        + if c.conditional { " conditional" } else { "" };
                    let _ = write!(
                        out,
                        "<td class=\"{class}\" data-role=\"{}\" data-access=\"{}\" title=\"{}\">{}</td>",
                        esc(col),
                        esc(&c.label()),
                        esc(&title),
                        esc(&c.label())
                    );
                }
                out.push_str("</tr>\n");
            }
            out.push_str("</tbody>\n</table>\n</section>\n");
        }
        out
    }

    fn html(&self) -> String {
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Rights matrix</title>\n<style>{STYLE}</style></head>\n<body>\n<h1>Rights matrix</h1>\n{}</body></html>\n",
            self.html_tables()
        )
    }
}

/// Stylesheet for the matrix tables.
pub const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem}table{border-collapse:collapse;margin-bottom:2rem}th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}td{text-align:center}td.yes{background:#d7f5dd}td.own{background:#fff4c2}td.addon{background:#dde8ff}td.no{color:#999}td.conditional{font-style:italic}";

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
