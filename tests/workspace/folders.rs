//! Every policy folder in the repository (`policies/`, `examples/*/`) is checked and tested.

use portcullis_engine::fixtures;
use portcullis_tests::policy_folders;

#[test]
fn every_folder_builds_and_passes_its_fixtures_with_full_coverage() {
    let folders = policy_folders();
    assert!(!folders.is_empty());
    for folder in folders {
        let name = folder.display().to_string();
        let snapshot = match portcullis_engine::load(&folder) {
            Ok(s) => s,
            Err(d) => panic!("{name} does not build:\n{}", d.render_human(&name)),
        };
        let errors: Vec<_> = snapshot
            .warnings()
            .iter()
            .filter(|d| d.code.starts_with("cedar::invalid"))
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
        let report = match fixtures::run(&snapshot) {
            Ok(r) => r,
            Err(d) => panic!("{name} fixtures do not load:\n{}", d.render_human(&name)),
        };
        assert!(!report.results.is_empty(), "{name} has no fixture cases");
        assert_eq!(
            report.failed(),
            0,
            "{name}:\n{}",
            report.render_human(&name, false)
        );
        assert!(
            report.coverage.unexercised_policies.is_empty(),
            "{name} has policies no case exercises: {:?}",
            report.coverage.unexercised_policies
        );
        assert!(
            report.coverage.unexercised_cells.is_empty(),
            "{name} has matrix cells no case asks about: {:?}",
            report.coverage.unexercised_cells
        );
    }
}
