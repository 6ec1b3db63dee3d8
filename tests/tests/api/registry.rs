//! The registry of user-owned tables (`shared::owned`) against `template.yaml`: account export
//! and deletion, realtime pushes and the migration tool take their tables from the registry, so
//! a table the template adds for a user's data, or wires differently, must show up here first.
//! Reads the template only: needs neither DynamoDB nor the gateway.
//!
//! Each check is a function of the template and the registry returning what is wrong, so the
//! tests below also prove, on a registry or template with one thing taken out, that each check
//! catches what it is for.

use shared::owned::{OwnedTable, ProfileTable, TeamTable, OWNED_TABLES, PROFILE_TABLE, TEAM_TABLES};
use template::{EnvValue, FunctionSpec, TableSpec, Template};

/// The route only the account function serves: the one that must reach every owned table.
const ACCOUNT_DELETION: &str = "DELETE /me";

fn template() -> Template {
    Template::load_default().expect("template.yaml parses")
}

fn key(table: &TableSpec, key_type: &str) -> Option<String> {
    table.key_schema.iter().find(|k| k.key_type == key_type).map(|k| k.attribute.clone())
}

fn registered(registry: &[OwnedTable], profile: ProfileTable, logical_id: &str) -> bool {
    logical_id == profile.logical_id || registry.iter().any(|t| t.logical_id == logical_id)
}

/// Tables partitioned by `user_id` that the registry does not know: their items would survive
/// `DELETE /me` and be left out of the export.
fn unregistered_user_tables(t: &Template, registry: &[OwnedTable], profile: ProfileTable) -> Vec<String> {
    t.tables
        .iter()
        .filter(|table| key(table, "HASH").as_deref() == Some("user_id"))
        .filter(|table| !registered(registry, profile, &table.logical_id))
        .map(|table| format!("{} is partitioned by user_id but not in shared::owned", table.logical_id))
        .collect()
}

/// Registry entries whose table the template lacks or keys otherwise than the registry says:
/// owned tables (`user_id`, `id`), the profile table `user_id` alone.
fn registry_tables_not_in_template(t: &Template, registry: &[OwnedTable], profile: ProfileTable) -> Vec<String> {
    let expected =
        registry.iter().map(|owned| (owned.logical_id, "user_id, id")).chain([(profile.logical_id, "user_id")]);
    expected
        .filter_map(|(logical_id, expected_keys)| {
            let Some(table) = t.table(logical_id) else {
                return Some(format!("{logical_id} is in shared::owned but template.yaml has no such table"));
            };
            let keys: Vec<_> = ["HASH", "RANGE"].into_iter().filter_map(|k| key(table, k)).collect();
            let keys = keys.join(", ");
            (keys != expected_keys)
                .then(|| format!("{logical_id} is keyed ({keys}), shared::owned expects ({expected_keys})"))
        })
        .collect()
}

/// Tables no registry classifies: nobody decided whether their items are a user's (export,
/// `DELETE /me`) or a team's (reached through memberships). Indexes keyed by `user_id` are how
/// a user's data hides in a table keyed otherwise, so every table must be classified.
fn unclassified_tables(t: &Template, registry: &[OwnedTable], teams: &[TeamTable]) -> Vec<String> {
    t.tables
        .iter()
        .filter(|table| !registered(registry, PROFILE_TABLE, &table.logical_id))
        .filter(|table| !teams.iter().any(|team| team.logical_id == table.logical_id))
        .map(|table| {
            let by_user = table
                .global_indexes
                .iter()
                .any(|i| i.key_schema.iter().any(|k| k.key_type == "HASH" && k.attribute == "user_id"));
            let why = if by_user { " (an index is keyed by user_id)" } else { "" };
            format!("{} is in no registry of shared::owned{why}", table.logical_id)
        })
        .collect()
}

/// Team tables the template lacks or keys otherwise than the registry says.
fn team_tables_not_in_template(t: &Template, teams: &[TeamTable]) -> Vec<String> {
    teams
        .iter()
        .filter_map(|team| {
            let Some(table) = t.table(team.logical_id) else {
                return Some(format!("{} is a team table but template.yaml has no such table", team.logical_id));
            };
            let keys: Vec<_> = ["HASH", "RANGE"].into_iter().filter_map(|k| key(table, k)).collect();
            let keys = keys.join(", ");
            (keys != team.key)
                .then(|| format!("{} is keyed ({keys}), shared::owned expects ({})", team.logical_id, team.key))
        })
        .collect()
}

#[test]
fn every_table_is_classified_and_team_tables_are_keyed_as_declared() {
    let t = template();
    assert_none(unclassified_tables(&t, OWNED_TABLES, TEAM_TABLES));
    assert_none(team_tables_not_in_template(&t, TEAM_TABLES));
    for (i, team) in TEAM_TABLES.iter().enumerate() {
        let mut unlisted = TEAM_TABLES.to_vec();
        unlisted.remove(i);
        assert_reports(unclassified_tables(&t, OWNED_TABLES, &unlisted), &format!("{} is in no", team.logical_id));
        let mut missing = t.clone();
        missing.tables.retain(|table| table.logical_id != team.logical_id);
        assert_reports(team_tables_not_in_template(&missing, TEAM_TABLES), &format!("{} is a team", team.logical_id));
    }
    let memberships = unclassified_tables(&t, OWNED_TABLES, &TEAM_TABLES[..2]);
    assert_reports(memberships, "MembershipsTable is in no registry of shared::owned (an index is keyed by user_id)");
}

fn account_function(t: &Template) -> &FunctionSpec {
    let mut serving = t.functions.iter().filter(|f| f.routes.iter().any(|r| r.key() == ACCOUNT_DELETION));
    let account = serving.next().unwrap_or_else(|| panic!("no function serves {ACCOUNT_DELETION}"));
    assert!(serving.next().is_none(), "two functions serve {ACCOUNT_DELETION}");
    account
}

/// Registry tables the account function cannot name (its variable missing, or naming another
/// table): `DELETE /me` and the export would fail, or miss them.
fn account_environment_gaps(t: &Template, registry: &[OwnedTable], profile: ProfileTable) -> Vec<String> {
    let account = account_function(t);
    let needed = registry.iter().map(|owned| (owned.env, owned.logical_id)).chain([(profile.env, profile.logical_id)]);
    needed
        .filter(|(env, logical_id)| account.environment.get(*env) != Some(&EnvValue::Ref((*logical_id).to_owned())))
        .map(|(env, logical_id)| {
            format!(
                "{}'s environment lacks {env}: !Ref {logical_id} (found {:?}); also grant it the table",
                account.logical_id,
                account.environment.get(env)
            )
        })
        .collect()
}

const PUSH_BINARY: &str = "realtime-push";

/// `pushed` entries whose table has no stream into the push function, and owned tables
/// streamed into a function that the registry does not mark `pushed`.
fn stream_mismatches(t: &Template, registry: &[OwnedTable]) -> Vec<String> {
    // The stream consumer: the realtime crate's push function.
    let pusher = t
        .functions
        .iter()
        .find(|f| f.binary == PUSH_BINARY)
        .unwrap_or_else(|| panic!("template.yaml has no function with binary {PUSH_BINARY}"));
    let streamed_anywhere = |logical_id: &str| t.functions.iter().any(|f| f.streams.iter().any(|s| s == logical_id));
    let mut problems = Vec::new();
    for owned in registry {
        let streams_to_pusher = pusher.streams.iter().any(|s| s == owned.logical_id)
            && t.table(owned.logical_id).is_some_and(|table| table.stream_view.is_some());
        if owned.pushed && !streams_to_pusher {
            problems.push(format!(
                "{} is pushed in shared::owned but has no stream into {}",
                owned.logical_id, pusher.logical_id
            ));
        }
        if !owned.pushed && streamed_anywhere(owned.logical_id) {
            problems.push(format!("{} streams into a function but is not pushed in shared::owned", owned.logical_id));
        }
    }
    problems
}

fn assert_none(problems: Vec<String>) {
    assert!(problems.is_empty(), "shared::owned and template.yaml disagree:\n  {}", problems.join("\n  "));
}

#[test]
fn every_user_table_is_in_the_registry() {
    assert_none(unregistered_user_tables(&template(), OWNED_TABLES, PROFILE_TABLE));
}

#[test]
fn every_registry_table_is_in_the_template() {
    assert_none(registry_tables_not_in_template(&template(), OWNED_TABLES, PROFILE_TABLE));
}

#[test]
fn the_account_function_names_every_registry_table() {
    assert_none(account_environment_gaps(&template(), OWNED_TABLES, PROFILE_TABLE));
}

#[test]
fn pushed_tables_are_exactly_the_streamed_ones() {
    assert_none(stream_mismatches(&template(), OWNED_TABLES));
}

fn assert_reports(problems: Vec<String>, expected: &str) {
    assert!(problems.iter().any(|p| p.contains(expected)), "expected {expected:?} among {problems:?}");
}

/// Every check, on the template or the registry with one thing taken out of each entry.
#[test]
fn each_check_catches_what_it_is_for() {
    let t = template();
    let account = account_function(&t).logical_id.clone();
    let unwire = |env: &str| {
        let mut unwired = t.clone();
        unwired.functions.iter_mut().find(|f| f.logical_id == account).unwrap().environment.remove(env);
        unwired
    };
    let without_table = |logical_id: &str| {
        let mut missing = t.clone();
        missing.tables.retain(|table| table.logical_id != logical_id);
        missing
    };
    for (i, owned) in OWNED_TABLES.iter().enumerate() {
        let id = owned.logical_id;
        let mut unlisted = OWNED_TABLES.to_vec();
        unlisted.remove(i);
        assert_reports(unregistered_user_tables(&t, &unlisted, PROFILE_TABLE), &format!("{id} is partitioned"));

        let missing = without_table(id);
        assert_reports(registry_tables_not_in_template(&missing, OWNED_TABLES, PROFILE_TABLE), &format!("{id} is in"));
        let mut rekeyed = t.clone();
        if let Some(table) = rekeyed.tables.iter_mut().find(|table| table.logical_id == id) {
            table.key_schema.retain(|k| k.key_type == "HASH");
            let problems = registry_tables_not_in_template(&rekeyed, OWNED_TABLES, PROFILE_TABLE);
            assert_reports(problems, &format!("{id} is keyed"));
        }

        let unwired = unwire(owned.env);
        assert_reports(
            account_environment_gaps(&unwired, OWNED_TABLES, PROFILE_TABLE),
            &format!("lacks {}:", owned.env),
        );

        // (A pushed table without its stream is the real test's failure, not this one's.)
        if owned.pushed && t.functions.iter().any(|f| f.streams.iter().any(|s| s == id)) {
            let mut unstreamed = t.clone();
            for f in &mut unstreamed.functions {
                f.streams.retain(|s| s != id);
            }
            assert_reports(stream_mismatches(&unstreamed, OWNED_TABLES), &format!("{id} is pushed"));
            let mut not_pushed = OWNED_TABLES.to_vec();
            not_pushed[i].pushed = false;
            assert_reports(stream_mismatches(&t, &not_pushed), &format!("{id} streams"));
        }
    }

    let profile = PROFILE_TABLE.logical_id;
    let renamed = ProfileTable { logical_id: "ProfilesTable", env: PROFILE_TABLE.env };
    assert_reports(unregistered_user_tables(&t, OWNED_TABLES, renamed), &format!("{profile} is partitioned"));
    let missing = without_table(profile);
    assert_reports(registry_tables_not_in_template(&missing, OWNED_TABLES, PROFILE_TABLE), &format!("{profile} is in"));
    let unwired = unwire(PROFILE_TABLE.env);
    assert_reports(
        account_environment_gaps(&unwired, OWNED_TABLES, PROFILE_TABLE),
        &format!("lacks {}:", PROFILE_TABLE.env),
    );
}
