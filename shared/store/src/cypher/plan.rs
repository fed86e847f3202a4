//! The execution plan of a query, as Neo4j reports it for `EXPLAIN`.
//!
//! Neo4j sends the plan in the metadata of the `PULL` response (`plan`: a tree of maps with
//! `operatorType`, `args` and `children`). neo4rs 0.9.0-rc.11 decodes that metadata into its
//! [`neo4rs::summary::ResultSummary`] (with the `unstable-bolt-protocol-impl-v2` feature) but
//! keeps the field crate-private: the only public rendering of it is the summary's `Debug`
//! output. [`from_summary`] reads the plan back from that rendering with a strict reader of
//! Rust's `Debug` syntax (string literals are escaped, so text inside a value cannot pass for
//! structure). Anything it does not understand is an error, and the caller refuses the query:
//! the check fails closed, never open.

use std::collections::BTreeMap;

/// One operator of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// `operatorType` without the runtime suffix (`ProcedureCall`, `Expand(All)`).
    pub name: String,
    /// The operator's `args` that are strings (`Details`, `planner`, …).
    pub args: BTreeMap<String, String>,
    /// Its inputs.
    pub children: Vec<Operator>,
}

impl Operator {
    /// `args.Details`: what the operator does, in Cypher-like text.
    pub fn details(&self) -> Option<&str> {
        self.args.get("Details").map(String::as_str)
    }

    /// This operator and every operator below it, depth first.
    pub fn walk(&self) -> Vec<&Operator> {
        let mut out = vec![self];
        let mut i = 0;
        while i < out.len() {
            let node = out[i];
            out.extend(node.children.iter());
            i += 1;
        }
        out
    }
}

/// Reads the plan from the `Debug` rendering of a result summary.
///
/// # Errors
/// A message when the summary has no plan or it cannot be read.
pub fn from_summary(summary: &neo4rs::summary::ResultSummary) -> Result<Operator, String> {
    from_debug(&format!("{summary:?}"))
}

/// Reads the `plan: Some(…)` field of a summary's `Debug` text.
fn from_debug(text: &str) -> Result<Operator, String> {
    let tokens = tokenize(text)?;
    let start = tokens
        .windows(4)
        .position(|w| {
            matches!(
                w,
                [Token::Word(field), Token::Punct(':'), Token::Word(some), Token::Punct('(')]
                    if field == "plan" && some == "Some"
            )
        })
        .ok_or("the summary holds no plan")?;
    let mut parser = Parser {
        tokens: &tokens,
        at: start + 4,
    };
    let plan = parser.value(0)?;
    parser.expect(')')?;
    operator(&plan, 0)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A string literal, unescaped.
    Str(String),
    /// Anything else between punctuation: names, numbers.
    Word(String),
    Punct(char),
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err("an unterminated string in the summary".into()),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('n') => s.push('\n'),
                            Some('r') => s.push('\r'),
                            Some('t') => s.push('\t'),
                            Some('0') => s.push('\0'),
                            Some('\'') => s.push('\''),
                            Some('"') => s.push('"'),
                            Some('\\') => s.push('\\'),
                            Some('u') => {
                                if chars.next() != Some('{') {
                                    return Err("a malformed escape in the summary".into());
                                }
                                let mut hex = String::new();
                                for h in chars.by_ref() {
                                    if h == '}' {
                                        break;
                                    }
                                    hex.push(h);
                                }
                                let decoded = u32::from_str_radix(&hex, 16)
                                    .ok()
                                    .and_then(char::from_u32)
                                    .ok_or("a malformed escape in the summary")?;
                                s.push(decoded);
                            }
                            _ => return Err("an unknown escape in the summary".into()),
                        },
                        Some(other) => s.push(other),
                    }
                }
                tokens.push(Token::Str(s));
            }
            '{' | '}' | '[' | ']' | '(' | ')' | ',' | ':' => tokens.push(Token::Punct(c)),
            c if c.is_whitespace() => {}
            c => {
                let mut word = String::from(c);
                while let Some(&next) = chars.peek() {
                    if next.is_whitespace() || "{}[](),:\"".contains(next) {
                        break;
                    }
                    word.push(next);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

/// A value of the plan: neo4rs' `Bolt` values as `Debug` prints them.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    /// Numbers, booleans, `Null`.
    Scalar(String),
    List(Vec<Value>),
    Map(Vec<(String, Value)>),
}

/// Nesting deeper than this is refused (plans are a few dozen levels at most).
const MAX_DEPTH: usize = 512;

struct Parser<'t> {
    tokens: &'t [Token],
    at: usize,
}

impl Parser<'_> {
    fn next(&mut self) -> Option<&Token> {
        let token = self.tokens.get(self.at);
        self.at += 1;
        token
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn expect(&mut self, punct: char) -> Result<(), String> {
        match self.next() {
            Some(Token::Punct(p)) if *p == punct => Ok(()),
            other => Err(format!("expected {punct:?} in the plan, found {other:?}")),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err("the plan is nested too deeply".into());
        }
        match self.next().cloned() {
            Some(Token::Str(s)) => Ok(Value::Str(s)),
            Some(Token::Punct('{')) => {
                let mut entries = Vec::new();
                if self.peek() == Some(&Token::Punct('}')) {
                    self.at += 1;
                    return Ok(Value::Map(entries));
                }
                loop {
                    let Some(Token::Str(key)) = self.next().cloned() else {
                        return Err("expected a key in a plan map".into());
                    };
                    self.expect(':')?;
                    entries.push((key, self.value(depth + 1)?));
                    match self.next() {
                        Some(Token::Punct(',')) => {}
                        Some(Token::Punct('}')) => return Ok(Value::Map(entries)),
                        other => return Err(format!("unexpected {other:?} in a plan map")),
                    }
                }
            }
            Some(Token::Punct('[')) => {
                let mut items = Vec::new();
                if self.peek() == Some(&Token::Punct(']')) {
                    self.at += 1;
                    return Ok(Value::List(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    match self.next() {
                        Some(Token::Punct(',')) => {}
                        Some(Token::Punct(']')) => return Ok(Value::List(items)),
                        other => return Err(format!("unexpected {other:?} in a plan list")),
                    }
                }
            }
            // `String("…")`, `List([…])`, `Dictionary({…})`, `Integer(3)`; or a bare `Null`.
            Some(Token::Word(word)) => {
                if self.peek() == Some(&Token::Punct('(')) {
                    self.at += 1;
                    let inner = self.value(depth + 1)?;
                    self.expect(')')?;
                    Ok(inner)
                } else {
                    Ok(Value::Scalar(word))
                }
            }
            other => Err(format!("unexpected {other:?} in the plan")),
        }
    }
}

fn operator(value: &Value, depth: usize) -> Result<Operator, String> {
    if depth > MAX_DEPTH {
        return Err("the plan is nested too deeply".into());
    }
    let Value::Map(entries) = value else {
        return Err("a plan operator is not a map".into());
    };
    let get = |key: &str| entries.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let Some(Value::Str(operator_type)) = get("operatorType") else {
        return Err("a plan operator has no operatorType".into());
    };
    let name = operator_type
        .split_once('@')
        .map_or(operator_type.as_str(), |(name, _)| name)
        .to_owned();
    let mut args = BTreeMap::new();
    match get("args") {
        None => {}
        Some(Value::Map(arg_entries)) => {
            for (key, value) in arg_entries {
                if let Value::Str(s) = value {
                    args.insert(key.clone(), s.clone());
                }
            }
        }
        Some(_) => return Err("a plan operator's args are not a map".into()),
    }
    let children = match get("children") {
        None => Vec::new(),
        Some(Value::List(items)) => items
            .iter()
            .map(|child| operator(child, depth + 1))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("a plan operator's children are not a list".into()),
    };
    Ok(Operator {
        name,
        args,
        children,
    })
}

/// The columns a `ProduceResults` operator's details name, in order (`z, a` or
/// `` `n.name`, `x` ``); `None` when the text is not a plain list of names.
pub fn produced_columns(root: &Operator) -> Option<Vec<String>> {
    if root.name != "ProduceResults" {
        return None;
    }
    let details = root.details()?;
    let mut items = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in details.chars() {
        // A doubled backtick inside a quoted name toggles twice: the name goes on.
        if c == '`' {
            quoted = !quoted;
        }
        if c == ',' && !quoted {
            items.push(std::mem::take(&mut current));
            continue;
        }
        current.push(c);
    }
    if quoted {
        return None;
    }
    items.push(current);
    items
        .iter()
        .map(|item| {
            let item = item.trim();
            if let Some(inner) = item.strip_prefix('`').and_then(|s| s.strip_suffix('`')) {
                Some(inner.replace("``", "`"))
            } else if !item.is_empty() && !item.contains(char::is_whitespace) && !item.contains('`')
            {
                Some(item.to_owned())
            } else {
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUMMARY: &str = r#"ResultSummary { bookmark: None, t_first: Some(1), t_last: Some(0), type: Some(Read), db: Some("neo4j"), stats: Counters { nodes_created: 0 }, plan: Some({"args": Dictionary({"Details": String("z, a"), "planner": String("COST"), "EstimatedRows": Float(1.0)}), "operatorType": String("ProduceResults@neo4j"), "identifiers": List([String("z"), String("a")]), "children": List([Dictionary({"operatorType": String("ProcedureCall@neo4j"), "args": Dictionary({"Details": String("db.labels() :: (label :: STRING) \"}, \\\"operatorType\\\": String(\\\"x\\\")")}), "children": List([])})])}), profile: None, notifications: [] }"#;

    #[test]
    fn the_plan_is_read_from_a_summary_rendering() {
        let plan = from_debug(SUMMARY).expect("plan");
        assert_eq!(plan.name, "ProduceResults");
        assert_eq!(plan.details(), Some("z, a"));
        assert_eq!(plan.children.len(), 1);
        let call = &plan.children[0];
        assert_eq!(call.name, "ProcedureCall");
        // Text inside a string stays text, even when it looks like structure.
        assert!(
            call.details()
                .unwrap_or_default()
                .starts_with("db.labels()")
        );
        assert_eq!(plan.walk().len(), 2);
    }

    #[test]
    fn a_summary_without_a_plan_or_with_a_broken_one_is_an_error() {
        assert!(from_debug("ResultSummary { plan: None, profile: None }").is_err());
        assert!(from_debug(r#"ResultSummary { plan: Some({"operatorType": String("x"#).is_err());
        assert!(from_debug(r#"ResultSummary { plan: Some({"args": Dictionary({})}) }"#).is_err());
    }

    #[test]
    fn produced_columns_keep_their_order_and_backticks_are_names() {
        let op = |details: &str| Operator {
            name: "ProduceResults".into(),
            args: BTreeMap::from([("Details".to_owned(), details.to_owned())]),
            children: Vec::new(),
        };
        assert_eq!(
            produced_columns(&op("z, a")),
            Some(vec!["z".to_owned(), "a".to_owned()])
        );
        assert_eq!(
            produced_columns(&op("`n.name`, `a, b`, `x``y`")),
            Some(vec![
                "n.name".to_owned(),
                "a, b".to_owned(),
                "x`y".to_owned()
            ])
        );
        assert_eq!(produced_columns(&op("a b")), None);
        assert_eq!(produced_columns(&op("`open")), None);
    }
}
