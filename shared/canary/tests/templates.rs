//! Analysis templates: the shipped files parse and render, invalid templates are refused with
//! the field named, selectors cannot inject PromQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use deploygraph_canary::template::SHIPPED;
use deploygraph_canary::{Error, MetricSpec, Selector, Template, Window};
use std::time::Duration;

fn selector() -> Selector {
    Selector::parse(r#"app="checkout", pod_template_hash="5d9f7c""#).unwrap()
}

fn window() -> Window {
    Window::new(Duration::from_secs(300)).unwrap()
}

#[test]
fn every_shipped_template_parses_and_renders() {
    for (file, yaml) in SHIPPED {
        let template = Template::parse(yaml).unwrap_or_else(|e| panic!("{file}: {e:?}"));
        let rendered = template.render(&selector(), window());
        assert!(!rendered.is_empty(), "{file}");
        for (metric, role, query) in rendered {
            assert!(
                !query.contains("{{") && !query.contains("}}}"),
                "{file} {metric}.{role}: {query}"
            );
            assert!(
                query.contains(r#"app="checkout",pod_template_hash="5d9f7c""#),
                "{file} {metric}.{role}: {query}"
            );
            assert!(query.contains("[5m]"), "{file} {metric}.{role}: {query}");
        }
    }
}

#[test]
fn the_error_ratio_template_renders_as_promql() {
    let t = Template::parse(SHIPPED[0].1).unwrap();
    let rendered = t.render(&selector(), window());
    assert_eq!(
        rendered[0].2,
        r#"sum by (pod) (increase(http_requests_total{code=~"5..",app="checkout",pod_template_hash="5d9f7c"}[5m]))"#
    );
    assert_eq!(
        rendered[1].2,
        r#"sum by (pod) (increase(http_requests_total{app="checkout",pod_template_hash="5d9f7c"}[5m]))"#
    );
    assert!(t.metrics[0].critical);
    assert_eq!(t.metrics[0].unit_label.as_deref(), Some("pod"));
    let latency = Template::parse(SHIPPED[1].1).unwrap();
    assert!(matches!(
        latency.metrics[0].spec,
        MetricSpec::Distribution { quantile: Some(q), allowed_change, .. } if q == 0.99 && allowed_change == 0.1
    ));
    assert_eq!(latency.metrics[0].unit_label.as_deref(), Some("pod"));
}

#[test]
fn a_unit_label_must_be_a_label_the_queries_group_by() {
    let by_pod = VALID_RATIO
        .replace("sum(increase(", "sum by (pod) (increase(")
        .replace("min_samples: 100", "min_samples: 100\n    unit_label: pod");
    let t = Template::parse(&by_pod).unwrap();
    assert_eq!(t.metrics[0].unit_label.as_deref(), Some("pod"));
    // A label the queries do not group by, a name that is not a label's, `le`, reserved.
    let cases = [
        by_pod.replace("unit_label: pod", "unit_label: node"),
        by_pod.replace("unit_label: pod", "unit_label: 'pod name'"),
        by_pod.replace("unit_label: pod", "unit_label: le"),
        by_pod.replace("unit_label: pod", "unit_label: __name__"),
        by_pod.replacen("sum by (pod) (", "sum(", 1),
    ];
    for yaml in &cases {
        assert_eq!(field_of(yaml), "metrics[0].unit_label", "{yaml}");
    }
    let err = Template::parse(&cases[0]).unwrap_err();
    assert!(err.to_string().contains("sum by (node)"), "{err}");
    // Samples have no counts per unit.
    let samples = r#"
name: latency
metrics:
  - name: latency
    kind: distribution
    input: samples
    query: max by (pod) (latency_seconds{{{selector}}})
    direction: increase
    allowed_change: 0.1
    min_samples: 10
    unit_label: pod
"#;
    assert_eq!(field_of(samples), "metrics[0].unit_label");
    let histogram = samples
        .replace("input: samples", "input: histogram")
        .replace(
            "max by (pod) (latency_seconds",
            "sum by (le, pod) (increase(latency_bucket",
        )
        .replace("{{{selector}}})", "{{{selector}}}[{{window}}]))");
    assert!(Template::parse(&histogram).is_ok(), "{histogram}");
}

const VALID_RATIO: &str = r#"
name: t
metrics:
  - name: errors
    kind: ratio
    numerator: sum(increase(errors_total{{{selector}}}[{{window}}]))
    denominator: sum(increase(requests_total{{{selector}}}[{{window}}]))
    direction: increase
    max_increase: 0.01
    min_samples: 100
"#;

fn field_of(yaml: &str) -> String {
    let err = Template::parse(yaml).expect_err("must be refused");
    err.field()
        .unwrap_or_else(|| panic!("no field in {err:?}"))
        .to_owned()
}

#[test]
fn invalid_templates_name_the_field() {
    assert!(Template::parse(VALID_RATIO).is_ok());
    let cases: &[(&str, &str, &str)] = &[
        ("{{window}}]))", "{{windw}}]))", "metrics[0].numerator"),
        (
            "sum(increase(requests_total{{{selector}}}[{{window}}]))",
            "\"  \"",
            "metrics[0].denominator",
        ),
        (
            "max_increase: 0.01",
            "max_increase: -0.01",
            "metrics[0].max_increase",
        ),
        (
            "min_samples: 100",
            "min_samples: 0",
            "metrics[0].min_samples",
        ),
        (
            "direction: increase",
            "direction: up",
            "metrics[0].direction",
        ),
        ("kind: ratio", "kind: gauge", "metrics[0].kind"),
        (
            "min_samples: 100",
            "min_samples: 100\n    thresold: 3",
            "metrics[0]",
        ),
        (
            "min_samples: 100",
            "min_samples: 100\n    allowed_change: 0.1",
            "metrics[0].allowed_change",
        ),
        ("    max_increase: 0.01\n", "", "metrics[0].max_increase"),
        ("name: t", "name: ''", "name"),
        (
            "numerator: sum(increase(errors_total{{{selector}}}[{{window}}]))",
            "numerator: sum(errors_total)",
            "metrics[0].numerator",
        ),
    ];
    for (from, to, field) in cases {
        assert!(VALID_RATIO.contains(from), "case {from}");
        let yaml = VALID_RATIO.replacen(from, to, 1);
        let got = field_of(&yaml);
        assert!(
            got.starts_with(field),
            "{from} -> {to}: expected field {field}, got {got}"
        );
    }
}

#[test]
fn a_duplicate_metric_is_refused_by_name() {
    let doubled = format!(
        "{VALID_RATIO}{}",
        VALID_RATIO
            .split_once("metrics:\n")
            .unwrap()
            .1
            .replace("max_increase: 0.01", "max_increase: 0.02")
    );
    let err = Template::parse(&doubled).unwrap_err();
    assert_eq!(err.field(), Some("metrics[1].name"), "{err}");
    assert!(err.to_string().contains("defined twice"), "{err}");
}

#[test]
fn distribution_templates_are_checked_too() {
    let yaml = r#"
name: latency
metrics:
  - name: latency
    kind: distribution
    query: sum by (le) (increase(latency_bucket{{{selector}}}[{{window}}]))
    direction: either
    allowed_change: 0.1
    quantile: 1.5
    min_samples: 10
"#;
    assert_eq!(field_of(yaml), "metrics[0].quantile");
    let no_query = yaml.replace(
        "    query: sum by (le) (increase(latency_bucket{{{selector}}}[{{window}}]))\n",
        "",
    );
    assert_eq!(field_of(&no_query), "metrics[0].query");
    let ratio_field = yaml.replace("quantile: 1.5", "max_increase: 0.1");
    assert_eq!(field_of(&ratio_field), "metrics[0].max_increase");
    let good = yaml.replace("quantile: 1.5", "input: samples");
    let t = Template::parse(&good).unwrap();
    assert!(matches!(
        t.metrics[0].spec,
        MetricSpec::Distribution { quantile: None, .. }
    ));
}

#[test]
fn selectors_that_could_inject_promql_are_refused() {
    let refused = [
        "",
        r#"app="web"} or vector(1) or up{a="b""#,
        r#"app="web\"} or vector(1)"#,
        r#"app=web"#,
        r#"app="web" or vector(1)"#,
        r#"__name__="up""#,
        "app=\"web\nx\"",
        r#"app="web",,"#,
        r#"app="web","#,
        r#"1app="web""#,
        r#"app=="web""#,
        r#"app="web"}"#,
        r#"app="unterminated"#,
    ];
    for s in refused {
        assert!(
            matches!(Selector::parse(s), Err(Error::Selector { .. })),
            "accepted {s:?}"
        );
    }
    let accepted = Selector::parse(r#" app = "web" ,version!~"v1\.*" , env=~"prod|staging" "#);
    // A backslash is refused even inside a regex value: escapes are where injection hides.
    assert!(accepted.is_err());
    let ok = Selector::parse(r#" app = "web" ,version!~"v1.*" , env=~"prod|staging",team!="" "#)
        .unwrap();
    assert_eq!(
        ok.to_string(),
        r#"app="web",version!~"v1.*",env=~"prod|staging",team!="""#
    );
}

#[test]
fn windows_are_promql_durations() {
    assert_eq!(
        Window::new(Duration::from_secs(30)).unwrap().to_string(),
        "30s"
    );
    assert_eq!(
        Window::new(Duration::from_secs(5400)).unwrap().to_string(),
        "90m"
    );
    assert_eq!(
        Window::new(Duration::from_millis(1500))
            .unwrap()
            .to_string(),
        "1500ms"
    );
    assert_eq!(
        "1h30m".parse::<Window>().unwrap().duration(),
        Duration::from_secs(5400)
    );
    for bad in ["", "5", "m", "5x", "0s", "-5m", "99999999999999999999y"] {
        assert!(bad.parse::<Window>().is_err(), "{bad}");
    }
    assert!(Window::new(Duration::ZERO).is_err());
    assert!(Window::new(Duration::from_nanos(1_000_500)).is_err());
}
