//! Diagnostics of broken edits: each test copies the default policy folder (its frozen copy
//! `data/policies/`, so snapshots do not move with every policy edit), makes one
//! edit a product owner might make by mistake, loads it, and snapshots what `portcullis check`
//! would print (rendered with the root `policies`, so no temporary path reaches a snapshot).
//! Fixture problems go through `fixtures::run`, as `portcullis test` does.

use insta::assert_snapshot;
use portcullis_engine::fixtures;

use crate::support::Folder;

/// The codes of the errors, in order, for assertions that do not depend on Cedar's wording.
fn codes(d: &portcullis_engine::Diagnostics) -> Vec<&str> {
    d.iter().map(|d| d.code.as_str()).collect()
}

#[test]
fn frozen_copy_loads_and_its_fixtures_pass() {
    let f = Folder::copy_of_policies();
    let snap = f.load();
    assert!(!snap.warnings().has_errors());
    let report = fixtures::run(&snap).unwrap();
    assert_eq!(report.failed(), 0, "{}", report.render_human("policies", false));
}

#[test]
fn live_default_folder_loads_and_its_fixtures_pass() {
    let f = Folder::copy_of_live_policies();
    let snap = f.load();
    let report = fixtures::run(&snap).unwrap();
    assert_eq!(report.failed(), 0, "{}", report.render_human("policies", false));
}

#[test]
fn roles_toml_syntax_error() {
    let f = Folder::copy_of_policies();
    f.edit("roles.toml", "[roles.owner]", "[roles.owner");
    let d = f.load_err();
    assert_eq!(codes(&d), ["roles::syntax"]);
    assert_snapshot!(f.render(&d));
}

#[test]
fn unknown_role_in_feature_suggests_the_close_one() {
    let f = Folder::copy_of_policies();
    f.edit(
        "roles.toml",
        "actions = [\"shipping_rule.edit\"]\nroles = [\"owner\", \"admin\"]",
        "actions = [\"shipping_rule.edit\"]\nroles = [\"owner\", \"admn\"]",
    );
    let d = f.load_err();
    assert_eq!(codes(&d), ["roles::unknown-role"]);
    assert_eq!(d.0[0].help.as_deref(), Some("did you mean `admin`?"));
    assert_snapshot!(f.render(&d));
}

#[test]
fn unknown_role_in_json() {
    let f = Folder::copy_of_policies();
    f.edit(
        "roles.toml",
        "roles = [\"admin\", \"regular\"]          # carriers",
        "roles = [\"admin\", \"reguler\"]          # carriers",
    );
    let d = f.load_err();
    assert_snapshot!(f.render_json(&d));
}

#[test]
fn unknown_action_in_feature() {
    let f = Folder::copy_of_policies();
    f.edit(
        "roles.toml",
        "actions = [\"shipment.create\"]",
        "actions = [\"shipment.creat\"]",
    );
    let d = f.load_err();
    assert_eq!(codes(&d), ["roles::unknown-action"]);
    assert_eq!(d.0[0].help.as_deref(), Some("did you mean `shipment.create`?"));
    assert_snapshot!(f.render(&d));
}

#[test]
fn duplicate_rank() {
    let f = Folder::copy_of_policies();
    f.edit("roles.toml", "rank = 50", "rank = 60");
    let d = f.load_err();
    assert_eq!(codes(&d), ["roles::duplicate-rank"]);
    assert_snapshot!(f.render(&d));
}

#[test]
fn unknown_field_suggests_the_close_one() {
    let f = Folder::copy_of_policies();
    f.edit("roles.toml", "title = \"Owner\"", "titel = \"Owner\"");
    let d = f.load_err();
    assert_eq!(codes(&d), ["roles::syntax"]);
    assert_eq!(d.0[0].help.as_deref(), Some("did you mean `title`?"));
    assert_snapshot!(f.render(&d));
}

#[test]
fn cedar_syntax_error() {
    let f = Folder::copy_of_policies();
    f.edit("users.cedar", "permit (", "permitt (");
    let d = f.load_err();
    assert!(codes(&d).iter().all(|c| *c == "cedar::syntax"), "{d:?}");
    assert_snapshot!(f.render(&d));
}

#[test]
fn cedar_validation_error_unknown_attribute() {
    let f = Folder::copy_of_policies();
    f.edit(
        "users.cedar",
        "when { resource == principal };",
        "when { resource == principal && principal.actve };",
    );
    let d = f.load_err();
    assert!(codes(&d).iter().all(|c| *c == "cedar::invalid"), "{d:?}");
    assert_snapshot!(f.render(&d));
}

#[test]
fn cedar_validation_error_in_json() {
    let f = Folder::copy_of_policies();
    f.edit(
        "users.cedar",
        "when { resource == principal };",
        "when { resource == principal && principal.actve };",
    );
    let d = f.load_err();
    assert_snapshot!(f.render_json(&d));
}

#[test]
fn schema_syntax_error() {
    let f = Folder::copy_of_policies();
    f.edit("schema.cedarschema", "entity Role;", "entity Role");
    let d = f.load_err();
    assert!(codes(&d).iter().all(|c| *c == "schema::invalid"), "{d:?}");
    assert_snapshot!(f.render(&d));
}

#[test]
fn missing_schema() {
    let f = Folder::copy_of_policies();
    f.remove("schema.cedarschema");
    let d = f.load_err();
    assert_eq!(codes(&d), ["schema::missing"]);
    assert_snapshot!(f.render(&d));
}

#[test]
fn when_expression_type_error_points_inside_the_toml_string() {
    let f = Folder::copy_of_policies();
    f.edit(
        "roles.toml",
        "principal.company.subscription.contains(\"price_calculation\")'",
        "principal.company.subscription.contains(\"price_calculation\") && principal.company.account_type'",
    );
    let d = f.load_err();
    assert!(codes(&d).iter().all(|c| *c == "roles::invalid"), "{d:?}");
    // The caret sits on the offending operand, inside the TOML string.
    let loc = d.0[0].location.as_ref().unwrap();
    assert_eq!(loc.file, "roles.toml");
    let operand = loc.source_line.find("principal.company.account_type'").unwrap();
    assert_eq!(loc.column, operand + 1, "{}", f.render(&d));
    assert_snapshot!(f.render(&d));
}

#[test]
fn when_expression_syntax_error_points_inside_the_toml_string() {
    let f = Folder::copy_of_policies();
    f.edit(
        "roles.toml",
        "principal.company.subscription.contains(\"insights\")'",
        "principal.company.subscription.contains(\"insights\") &&'",
    );
    let d = f.load_err();
    assert!(codes(&d).iter().all(|c| *c == "roles::when"), "{d:?}");
    assert_snapshot!(f.render(&d));
}

#[test]
fn several_errors_are_all_reported() {
    let f = Folder::copy_of_policies();
    // Two role-model errors, a Cedar syntax error in one file, a validation error in another.
    f.edit("roles.toml", "rank = 50", "rank = 60");
    f.edit(
        "roles.toml",
        "actions = [\"shipping_rule.edit\"]\nroles = [\"owner\", \"admin\"]",
        "actions = [\"shipping_rule.edit\"]\nroles = [\"owner\", \"admn\"]",
    );
    f.edit("grants.cedar", "permit (", "permit ((");
    f.edit(
        "users.cedar",
        "when { resource == principal };",
        "when { resource == principal && principal.actve };",
    );
    let d = f.load_err();
    let c = codes(&d);
    for expected in [
        "roles::duplicate-rank",
        "roles::unknown-role",
        "cedar::syntax",
        "cedar::invalid",
    ] {
        assert!(c.contains(&expected), "{expected} missing from {c:?}");
    }
    assert_snapshot!(f.render(&d));
}

#[test]
fn fixture_with_unknown_role() {
    let f = Folder::copy_of_policies();
    f.edit("fixtures/common.toml", "role = \"regular\"", "role = \"reguler\"");
    let d = fixtures::run(&f.load()).unwrap_err();
    assert_eq!(codes(&d), ["fixture::unknown-role"]);
    assert_eq!(d.0[0].help.as_deref(), Some("did you mean `regular`?"));
    assert_snapshot!(f.render(&d));
}

#[test]
fn fixture_with_unknown_include() {
    let f = Folder::copy_of_policies();
    f.write(
        "fixtures/more.toml",
        "include = [\"comon.toml\"]\n\n[[case]]\nname = \"owner reads shipments\"\nprincipal = \"olivia\"\naction = \"shipment.read\"\nresource = 'Portal::Shipment::\"s1\"'\nexpect = \"allow\"\n",
    );
    let d = fixtures::run(&f.load()).unwrap_err();
    assert_eq!(codes(&d), ["fixture::unknown-include"]);
    assert_eq!(d.0[0].help.as_deref(), Some("did you mean `common.toml`?"));
    assert_snapshot!(f.render(&d));
}

#[test]
fn fixture_with_toml_error() {
    let f = Folder::copy_of_policies();
    f.write(
        "fixtures/broken.toml",
        "[[case]]\nname = \"unterminated\nprincipal = \"olivia\"\n",
    );
    let d = fixtures::run(&f.load()).unwrap_err();
    assert_eq!(codes(&d), ["fixture::syntax"]);
    assert_snapshot!(f.render(&d));
}

#[test]
fn fixture_with_unknown_field_in_json() {
    let f = Folder::copy_of_policies();
    f.edit(
        "fixtures/common.toml",
        "expect = \"allow\"",
        "expected = \"allow\"",
    );
    let d = fixtures::run(&f.load()).unwrap_err();
    assert_snapshot!(f.render_json(&d));
}

#[test]
fn fixture_unknown_field_suggests_the_close_one() {
    let f = Folder::copy_of_policies();
    f.edit(
        "fixtures/common.toml",
        "expect = \"allow\"",
        "expected = \"allow\"",
    );
    let d = fixtures::run(&f.load()).unwrap_err();
    assert_eq!(d.0[0].help.as_deref(), Some("did you mean `expect`?"));
}
