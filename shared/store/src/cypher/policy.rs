//! What a user's query may do, decided on its execution plan (`EXPLAIN`), not on its text.
//!
//! A plan passes when every operator is a read operator of [`READ_OPERATORS`], every procedure
//! it calls is in [`ALLOWED_PROCEDURES`], and every function its operators' details name is a
//! built-in one (unqualified, other than `file()` and `linenumber()`, or under one of the
//! namespaces of [`ALLOWED_FUNCTION_NAMESPACES`]). Everything else is refused: loading files or
//! URLs (`LoadCSV`), writes and schema changes, `SHOW …` and other administration commands,
//! `CALL { … } IN TRANSACTIONS`, `dbms.*` and APOC procedures and functions, and operators
//! this list does not know (a newer Neo4j's), so the check fails closed.

use super::plan::Operator;

/// Procedures a user query may call: read-only views of the schema.
pub const ALLOWED_PROCEDURES: [&str; 6] = [
    "db.labels",
    "db.relationshipTypes",
    "db.propertyKeys",
    "db.schema.visualization",
    "db.schema.nodeTypeProperties",
    "db.schema.relTypeProperties",
];

/// Namespaces of built-in functions a user query may call (`point.distance`,
/// `duration.between`, `date.truncate`, …). Unqualified built-ins (`count`, `toLower`, …)
/// are allowed too, except [`REFUSED_FUNCTIONS`].
pub const ALLOWED_FUNCTION_NAMESPACES: [&str; 8] = [
    "point",
    "date",
    "datetime",
    "localdatetime",
    "time",
    "localtime",
    "duration",
    "vector.similarity",
];

/// Unqualified functions refused: they only make sense with `LOAD CSV`.
pub const REFUSED_FUNCTIONS: [&str; 2] = ["file", "linenumber"];

/// Operators that only read (Neo4j 5 names, without the runtime suffix).
pub const READ_OPERATORS: &[&str] = &[
    "ProduceResults",
    "EmptyResult",
    "EmptyRow",
    "Argument",
    "ArgumentTracker",
    "AllNodesScan",
    "PartitionedAllNodesScan",
    "NodeByLabelScan",
    "PartitionedNodeByLabelScan",
    "NodeByIdSeek",
    "NodeByElementIdSeek",
    "NodeIndexSeek",
    "NodeUniqueIndexSeek",
    "MultiNodeIndexSeek",
    "AssertingMultiNodeIndexSeek",
    "NodeIndexSeekByRange",
    "NodeUniqueIndexSeekByRange",
    "NodeIndexContainsScan",
    "NodeIndexEndsWithScan",
    "NodeIndexScan",
    "IntersectionNodeByLabelsScan",
    "UnionNodeByLabelsScan",
    "SubtractionNodeByLabelsScan",
    "DirectedAllRelationshipsScan",
    "UndirectedAllRelationshipsScan",
    "DirectedRelationshipTypeScan",
    "UndirectedRelationshipTypeScan",
    "DirectedUnionRelationshipTypesScan",
    "UndirectedUnionRelationshipTypesScan",
    "DirectedRelationshipByIdSeek",
    "UndirectedRelationshipByIdSeek",
    "DirectedRelationshipByElementIdSeek",
    "UndirectedRelationshipByElementIdSeek",
    "DirectedRelationshipIndexSeek",
    "UndirectedRelationshipIndexSeek",
    "DirectedRelationshipUniqueIndexSeek",
    "UndirectedRelationshipUniqueIndexSeek",
    "DirectedRelationshipIndexSeekByRange",
    "UndirectedRelationshipIndexSeekByRange",
    "DirectedRelationshipUniqueIndexSeekByRange",
    "UndirectedRelationshipUniqueIndexSeekByRange",
    "DirectedRelationshipIndexScan",
    "UndirectedRelationshipIndexScan",
    "DirectedRelationshipIndexContainsScan",
    "UndirectedRelationshipIndexContainsScan",
    "DirectedRelationshipIndexEndsWithScan",
    "UndirectedRelationshipIndexEndsWithScan",
    "NodeCountFromCountStore",
    "RelationshipCountFromCountStore",
    "Expand(All)",
    "Expand(Into)",
    "OptionalExpand(All)",
    "OptionalExpand(Into)",
    "VarLengthExpand(All)",
    "VarLengthExpand(Into)",
    "VarLengthExpand(Pruning)",
    "VarLengthExpand(Pruning,BFS,All)",
    "VarLengthExpand(Pruning,BFS,Into)",
    "BFSPruningVarLengthExpand",
    "ShortestPath",
    "StatefulShortestPath(All)",
    "StatefulShortestPath(Into)",
    "Trail",
    "Repeat(Trail)",
    "ProjectEndpoints",
    "AssertSameNode",
    "AssertSameRelationship",
    "Filter",
    "Limit",
    "ExhaustiveLimit",
    "Skip",
    "Sort",
    "PartialSort",
    "Top",
    "PartialTop",
    "Projection",
    "CacheProperties",
    "EagerAggregation",
    "OrderedAggregation",
    "Distinct",
    "OrderedDistinct",
    "Union",
    "OrderedUnion",
    "Unwind",
    "PartitionedUnwind",
    "Optional",
    "CartesianProduct",
    "NodeHashJoin",
    "ValueHashJoin",
    "NodeLeftOuterHashJoin",
    "NodeRightOuterHashJoin",
    "TriadicSelection",
    "TriadicBuild",
    "TriadicFilter",
    "Apply",
    "SemiApply",
    "AntiSemiApply",
    "ConditionalApply",
    "AntiConditionalApply",
    "SelectOrSemiApply",
    "SelectOrAntiSemiApply",
    "LetSemiApply",
    "LetAntiSemiApply",
    "LetSelectOrSemiApply",
    "LetSelectOrAntiSemiApply",
    "RollUpApply",
    "Anti",
    "Eager",
    "NullifyMetadata",
    "PreserveOrder",
    "ProcedureCall",
];

/// Why the plan of a query is refused, in words for the user; `None` when it may run.
pub fn refusal(plan: &Operator) -> Option<String> {
    for op in plan.walk() {
        if op.name == "LoadCSV" {
            return Some(
                "the query loads a file or URL (LOAD CSV); user queries may only read the graph"
                    .into(),
            );
        }
        if op.name == "TransactionApply" || op.name == "TransactionForeach" {
            return Some("CALL { … } IN TRANSACTIONS is not allowed in user queries".into());
        }
        if !READ_OPERATORS.contains(&op.name.as_str()) {
            return Some(format!(
                "the query's plan has the operator {:?}, which is not a read operator this \
                 server allows (writes, schema and administration commands such as SHOW … \
                 are refused)",
                op.name
            ));
        }
        if op.name == "ProcedureCall" {
            let name = op
                .details()
                .and_then(|d| d.split_once('('))
                .map(|(name, _)| name.trim().trim_matches('`').to_owned())
                .unwrap_or_default();
            if !ALLOWED_PROCEDURES.contains(&name.as_str()) {
                return Some(format!(
                    "the query calls the procedure {name:?}; user queries may call only {}",
                    ALLOWED_PROCEDURES.join(", ")
                ));
            }
        }
        let mut calls = op.details().map(called_names).unwrap_or_default();
        if op.name == "ProcedureCall" && !calls.is_empty() {
            // The procedure itself, checked above; its arguments may call functions.
            calls.remove(0);
        }
        for function in calls {
            if !function_allowed(&function) {
                return Some(format!(
                    "the query calls the function {function:?}; user queries may call built-in \
                     functions only (unqualified, other than {}, or under {})",
                    REFUSED_FUNCTIONS.join(", "),
                    ALLOWED_FUNCTION_NAMESPACES.join(", ")
                ));
            }
        }
    }
    None
}

fn function_allowed(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    match lower.rsplit_once('.') {
        None => !REFUSED_FUNCTIONS.contains(&lower.as_str()),
        Some((namespace, _)) => ALLOWED_FUNCTION_NAMESPACES.contains(&namespace),
    }
}

/// Names followed by `(` in an operator's text: function and procedure calls. String literals
/// (`'…'`, `"…"`) are skipped; backticked name parts (`` `apoc`.x ``) are names.
pub fn called_names(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut names = Vec::new();
    let mut name = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' | '"' => {
                name.clear();
                i += 1;
                while i < chars.len() && chars[i] != c {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            '`' => {
                i += 1;
                while i < chars.len() {
                    if chars[i] == '`' {
                        if chars.get(i + 1) == Some(&'`') {
                            name.push('`');
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    name.push(chars[i]);
                    i += 1;
                }
            }
            c if c.is_alphanumeric() || c == '_' || c == '$' => name.push(c),
            '.' if !name.is_empty() => name.push('.'),
            '(' => {
                if !name.is_empty() && !name.ends_with('.') && !name.starts_with(char::is_numeric) {
                    names.push(std::mem::take(&mut name));
                }
                name.clear();
            }
            _ => name.clear(),
        }
        i += 1;
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn op(name: &str, details: &str, children: Vec<Operator>) -> Operator {
        Operator {
            name: name.into(),
            args: BTreeMap::from([("Details".to_owned(), details.to_owned())]),
            children,
        }
    }

    #[test]
    fn calls_are_found_outside_string_literals() {
        assert_eq!(
            called_names("toLower(n.name) AS x, 'apoc.x()' AS y, `apoc`.`coll`.sum([1]) AS z"),
            vec!["toLower", "apoc.coll.sum"]
        );
        assert_eq!(called_names("(n)-[r:T]->(m)"), Vec::<String>::new());
        assert_eq!(
            called_names("db.labels() :: (label :: STRING)"),
            vec!["db.labels"]
        );
    }

    #[test]
    fn reads_and_allowed_procedures_pass() {
        let plan = op(
            "ProduceResults",
            "label",
            vec![op(
                "ProcedureCall",
                "db.labels() :: (label :: STRING)",
                vec![],
            )],
        );
        assert_eq!(refusal(&plan), None);
        let plan = op(
            "ProduceResults",
            "d",
            vec![op(
                "Projection",
                "duration.between(a, b) AS d, count(*) AS c",
                vec![op("NodeByLabelScan", "n:Service", vec![])],
            )],
        );
        assert_eq!(refusal(&plan), None);
    }

    #[test]
    fn files_admin_commands_writes_and_other_procedures_are_refused() {
        let refused = |plan: Operator, word: &str| {
            let reason = refusal(&plan).expect("refused");
            assert!(reason.contains(word), "{reason}");
        };
        refused(
            op("ProduceResults", "r", vec![op("LoadCSV", "line", vec![])]),
            "LOAD CSV",
        );
        refused(
            op(
                "ProduceResults",
                "x",
                vec![op("ShowTransactions", "", vec![])],
            ),
            "ShowTransactions",
        );
        refused(
            op("ProduceResults", "x", vec![op("Create", "(n)", vec![])]),
            "Create",
        );
        refused(
            op(
                "ProduceResults",
                "name",
                vec![op(
                    "ProcedureCall",
                    "dbms.listConfig() :: (name :: STRING)",
                    vec![],
                )],
            ),
            "dbms.listConfig",
        );
        refused(
            op(
                "ProduceResults",
                "x",
                vec![op("Projection", "file() AS x", vec![])],
            ),
            "file",
        );
        refused(
            op(
                "ProduceResults",
                "x",
                vec![op("Projection", "apoc.text.join(l, ',') AS x", vec![])],
            ),
            "apoc.text.join",
        );
        refused(
            op(
                "ProduceResults",
                "",
                vec![op("TransactionApply", "", vec![])],
            ),
            "IN TRANSACTIONS",
        );
    }
}
