//! `docs/http-api.md` stays true: its operations table lists every path the server routes, each
//! with the request table the server takes there, and every row's example body is a
//! well-formed body of that table (built by the server's own JSON reader, which refuses
//! unknown fields, wrong types and unknown enum names).

use std::collections::BTreeSet;

use flatbuffers::FlatBufferBuilder;
use imserver::http::routes::{route, ROUTES};
use imserver::protocol::json;

#[test]
fn every_route_is_documented_with_an_example_its_table_accepts() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/http-api.md")).unwrap();
    let mut documented = BTreeSet::new();
    for line in doc.lines().filter(|l| l.starts_with("| `/v1/")) {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(|c| c.trim().trim_matches('`')).collect();
        let [path, table, example] = cells[..] else { panic!("a row of three cells: {line}") };
        let r = route(path).unwrap_or_else(|| panic!("{path} is documented but not routed"));
        assert_eq!(r.variant_name(), Some(table), "{path}: the table it takes");
        let body: serde_json::Value =
            serde_json::from_str(example).unwrap_or_else(|e| panic!("{path}: the example is not JSON: {e}"));
        let o = json::object(table).unwrap();
        let mut fbb = FlatBufferBuilder::new();
        if let Err(e) = json::build(&mut fbb, o, &body, "$") {
            panic!("{path}: the example is not a {table}: {}", e.0);
        }
        assert!(documented.insert(path.to_owned()), "{path} is documented twice");
    }
    let routed: BTreeSet<String> = ROUTES.iter().map(|(p, _)| p.to_string()).collect();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    assert!(undocumented.is_empty(), "routed but not in docs/http-api.md: {undocumented:?}");
}
