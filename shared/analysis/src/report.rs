//! Human renderings: the incident report in Markdown with a Mermaid diagram, and the text
//! forms of the queries.

use crate::views::{
    CommonFactors, Dora, DurationStats, IncidentReport, SuspectView, Suspects, Timeline,
    VerdictView,
};
use deploygraph_model::{Change, ServiceRef, Verdict, VerdictKind};
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// A Mermaid node id: letters, digits and underscores only.
fn node_id(prefix: &str, uid: &str) -> String {
    let clean: String = uid
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{prefix}_{clean}")
}

/// Mermaid labels are quoted; quotes inside are replaced.
fn label(text: &str) -> String {
    text.replace('"', "'")
}

/// A flowchart of the services involved (DEPENDS_ON), the suspect deployments (DEPLOYS) and
/// changes (AFFECTS) with their TRIGGERS and confidence, and the alert (FIRED_ON), or the chaos
/// run that RAISED it.
pub fn mermaid(suspects: &Suspects, topology: &[(ServiceRef, Vec<ServiceRef>)]) -> String {
    let mut out = String::from("flowchart LR\n");
    let alert = &suspects.alert;
    let alert_id = node_id("alert", alert.uid.as_str());
    let _ = writeln!(
        out,
        "  {alert_id}{{{{\"{} ({})\"}}}}",
        label(&alert.name),
        alert.severity.as_deref().unwrap_or("alert")
    );
    let mut services: BTreeSet<ServiceRef> = suspects.services.iter().cloned().collect();
    for view in &suspects.suspects {
        if let Some(c) = &view.change {
            services.extend(c.services.iter().cloned());
        }
    }
    for (s, deps) in topology {
        services.insert(s.clone());
        services.extend(deps.iter().cloned());
    }
    for s in &services {
        let _ = writeln!(
            out,
            "  {}[\"{}\"]",
            node_id("svc", s.uid().as_str()),
            label(&s.to_string())
        );
    }
    for s in &suspects.services {
        let _ = writeln!(
            out,
            "  {alert_id} -- FIRED_ON --> {}",
            node_id("svc", s.uid().as_str())
        );
    }
    for (s, deps) in topology {
        for d in deps {
            let _ = writeln!(
                out,
                "  {} -- DEPENDS_ON --> {}",
                node_id("svc", s.uid().as_str()),
                node_id("svc", d.uid().as_str())
            );
        }
    }
    for view in &suspects.suspects {
        let id = if let Some(stored) = &view.deployment {
            let d = &stored.deployment;
            let id = node_id("dep", d.uid.as_str());
            let _ = writeln!(
                out,
                "  {id}[\"{} {} ({})\"]",
                label(d.service.as_str()),
                label(d.version.as_deref().unwrap_or_else(|| d.short_commit())),
                d.status.as_str()
            );
            let _ = writeln!(
                out,
                "  {id} -- DEPLOYS --> {}",
                node_id("svc", d.service_uid().as_str())
            );
            id
        } else if let Some(c) = &view.change {
            let id = node_id("chg", c.uid.as_str());
            let _ = writeln!(
                out,
                "  {id}[\"{} change by {}\"]",
                c.kind.as_str(),
                label(&c.actor)
            );
            for s in &c.services {
                let _ = writeln!(
                    out,
                    "  {id} -- AFFECTS --> {}",
                    node_id("svc", s.uid().as_str())
                );
            }
            id
        } else {
            continue;
        };
        if !view.added_by_review {
            let _ = writeln!(
                out,
                "  {id} -. \"TRIGGERS {:.2}\" .-> {alert_id}",
                view.confidence_score
            );
        }
        if let Some(v) = &view.verdict {
            let kind = v.verdict.relationship();
            let arrow = match v.verdict {
                VerdictKind::Confirmed => "==>",
                VerdictKind::Rejected => "--x",
            };
            let _ = writeln!(
                out,
                "  {id} {arrow}|\"{kind} by {}\"| {alert_id}",
                label(&v.by)
            );
        }
    }
    if let Some(chaos) = &suspects.chaos {
        let id = node_id("chaos", chaos.run_uid.as_str());
        let name = chaos
            .run
            .as_ref()
            .map_or("chaos run", |r| r.experiment.as_str());
        let _ = writeln!(out, "  {id}([\"{}\"])", label(name));
        let _ = writeln!(out, "  {id} -- RAISED --> {alert_id}");
    }
    out
}

fn stats(s: Option<&DurationStats>) -> String {
    s.map_or("n/a".to_owned(), |s| {
        format!(
            "median {} / p90 {} ({} samples)",
            human(s.median_seconds),
            human(s.p90_seconds),
            s.samples
        )
    })
}

fn human(seconds: f64) -> String {
    let s = seconds.round() as i64;
    if s >= 86_400 {
        format!("{:.1}d", seconds / 86_400.0)
    } else if s >= 3600 {
        format!("{:.1}h", seconds / 3600.0)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// The alert's metric onset in words, when it was read.
fn onset_text(a: &deploygraph_model::Alert) -> Option<String> {
    match a.onset.as_ref()? {
        deploygraph_model::MetricOnset::Found {
            at,
            query,
            before,
            at_alert,
        } => Some(format!(
            "`{query}` began to move at {} ({} → {}), {} before the alert",
            deploygraph_model::format_time(at),
            crate::attribution::level(*before),
            crate::attribution::level(*at_alert),
            human((a.starts_at - *at).num_seconds().max(0) as f64)
        )),
        deploygraph_model::MetricOnset::NotFound { reason } => Some(format!("not found: {reason}")),
    }
}

/// The services' health metrics in words, earliest rise first, when they were read: `cache
/// rose at … (0.002 → 0.08), 19m before the alert; api rose at …; ledger steady`.
fn service_health_text(a: &deploygraph_model::Alert) -> Option<String> {
    let metrics = a.service_metrics.as_ref()?;
    let mut moved: Vec<(&String, &deploygraph_model::ServiceMetric)> = metrics
        .iter()
        .filter(|(_, m)| m.moved_at().is_some())
        .collect();
    moved.sort_by_key(|(name, m)| (m.moved_at(), *name));
    let mut parts: Vec<String> = moved
        .into_iter()
        .filter_map(|(name, m)| match m {
            deploygraph_model::ServiceMetric::Moved {
                at,
                before,
                at_alert,
            } => Some(format!(
                "{name} rose at {} ({} → {}), {} before the alert",
                deploygraph_model::format_time(at),
                crate::attribution::level(*before),
                crate::attribution::level(*at_alert),
                human((a.starts_at - *at).num_seconds().max(0) as f64)
            )),
            _ => None,
        })
        .collect();
    let steady: Vec<&str> = metrics
        .iter()
        .filter(|(_, m)| matches!(m, deploygraph_model::ServiceMetric::Steady))
        .map(|(name, _)| name.as_str())
        .collect();
    if !steady.is_empty() {
        parts.push(format!("steady: {}", steady.join(", ")));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Suspects as text.
pub fn suspects_text(s: &Suspects) -> String {
    let a = &s.alert;
    let mut out = format!(
        "alert {} ({}) fingerprint {} {} since {}\n",
        a.name,
        a.severity.as_deref().unwrap_or("no severity"),
        a.fingerprint,
        match a.status {
            deploygraph_model::AlertStatus::Firing => "firing",
            deploygraph_model::AlertStatus::Resolved => "resolved",
        },
        deploygraph_model::format_time(&a.starts_at)
    );
    if let Some(onset) = onset_text(a) {
        let _ = writeln!(out, "metric onset: {onset}");
    }
    if let Some(health) = service_health_text(a) {
        let _ = writeln!(out, "services' health: {health}");
    }
    if let Some(chaos) = &s.chaos {
        let _ = writeln!(
            out,
            "caused by chaos run {}: {}",
            chaos.run_uid,
            chaos
                .reason
                .as_deref()
                .unwrap_or("a chaos experiment was running")
        );
        return out;
    }
    if s.attribution_pending {
        out.push_str("attribution pending: the alert arrived moments ago; ask again shortly\n");
    } else if s.suspects.is_empty() {
        out.push_str("no deployment or other change in the window is a suspect\n");
    }
    if !s.attribution_pending {
        let _ = writeln!(
            out,
            "probability that no recorded change caused it (unexplained): {:.3}",
            s.unexplained
        );
    }
    for (i, v) in s.suspects.iter().enumerate() {
        suspect_text(&mut out, i + 1, v);
    }
    out
}

/// A reviewer's verdict in a sentence: `confirmed as the cause by alice at …: note`.
pub fn verdict_text(v: &VerdictView) -> String {
    format!(
        "{} by {} at {}{}",
        match v.verdict {
            VerdictKind::Confirmed => "confirmed as the cause",
            VerdictKind::Rejected => "rejected as the cause",
        },
        v.by,
        deploygraph_model::format_time(&v.at),
        v.note
            .as_deref()
            .map_or(String::new(), |n| format!(": {n}"))
    )
}

/// What a suspect's headline says of its review: ` [confirmed]`, ` [rejected]`, and for one
/// attribution did not rank, that a reviewer added it.
fn review_mark(v: &SuspectView) -> String {
    let mut mark = String::new();
    if let Some(verdict) = &v.verdict {
        mark.push_str(&format!(" [{}]", verdict.verdict.as_str()));
    }
    if v.added_by_review {
        mark.push_str(" (added by review: not among the computed suspects)");
    }
    mark
}

/// One ranked suspect as text: its headline, reasons, and what it changed.
fn suspect_text(out: &mut String, rank: usize, v: &SuspectView) {
    if let Some(stored) = &v.deployment {
        let d = &stored.deployment;
        let _ = writeln!(
            out,
            "{rank}. {:.3}  {} {} {} {} commit {} ({}){}",
            v.confidence_score,
            d.service,
            d.environment,
            d.version.as_deref().unwrap_or("-"),
            deploygraph_model::format_time(&d.started_at),
            d.commit_sha().unwrap_or("unknown"),
            d.status.as_str(),
            review_mark(v)
        );
        if let Some(verdict) = &v.verdict {
            let _ = writeln!(out, "     ! {}", verdict_text(verdict));
        }
        for r in &v.reasons {
            let _ = writeln!(out, "     - {r}");
        }
        for c in &d.changes {
            let _ = writeln!(
                out,
                "     ~ {} [{}] {} -> {}",
                c.path,
                c.kind.as_str(),
                c.before.as_deref().unwrap_or("∅"),
                c.after.as_deref().unwrap_or("∅")
            );
        }
    } else if let Some(c) = &v.change {
        let _ = writeln!(
            out,
            "{rank}. {:.3}  {} change of {} {} by {}{}{}",
            v.confidence_score,
            c.kind.as_str(),
            change_services(c),
            deploygraph_model::format_time(&c.at),
            c.actor,
            c.summary
                .as_deref()
                .map_or(String::new(), |s| format!(": {s}")),
            review_mark(v)
        );
        if let Some(verdict) = &v.verdict {
            let _ = writeln!(out, "     ! {}", verdict_text(verdict));
        }
        for r in &v.reasons {
            let _ = writeln!(out, "     - {r}");
        }
        for k in &c.diff {
            let _ = writeln!(
                out,
                "     ~ {} {} -> {}",
                k.key,
                k.before.as_deref().unwrap_or("∅"),
                k.after.as_deref().unwrap_or("∅")
            );
        }
        if let Some(link) = &c.link {
            let _ = writeln!(out, "     @ {link}");
        }
    }
}

/// A change's services with their environments (`payments (production), db (production)`).
fn change_services(c: &Change) -> String {
    c.services
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A timeline as text.
pub fn timeline_text(t: &Timeline) -> String {
    let mut out = format!(
        "{}{} from {} to {}\n",
        t.service,
        t.environment
            .as_ref()
            .map_or(String::new(), |e| format!(" ({e})")),
        deploygraph_model::format_time(&t.since),
        deploygraph_model::format_time(&t.until)
    );
    for e in &t.events {
        let _ = writeln!(
            out,
            "{}  {:<14} {}",
            deploygraph_model::format_time(&e.at),
            serde_json::to_value(e.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            e.summary
        );
    }
    out
}

/// Common factors as text.
pub fn factors_text(f: &CommonFactors) -> String {
    let mut out = format!(
        "{} failed deployment(s) of {}{} examined\n",
        f.deployments.len(),
        f.service,
        f.environment
            .as_ref()
            .map_or(String::new(), |e| format!(" ({e})"))
    );
    if f.factors.is_empty() {
        out.push_str("nothing in common\n");
    }
    for factor in &f.factors {
        let _ = writeln!(
            out,
            "{}/{}  {:<12} {}",
            factor.count,
            f.deployments.len(),
            factor.kind,
            factor.value
        );
    }
    out
}

/// DORA metrics as text.
pub fn dora_text(d: &Dora) -> String {
    let mut out = format!(
        "DORA metrics from {} to {}\n",
        deploygraph_model::format_time(&d.since),
        deploygraph_model::format_time(&d.until)
    );
    if d.services.is_empty() {
        out.push_str("no deployments in the period\n");
    }
    for m in &d.services {
        let cluster = if m.cluster == deploygraph_model::Cluster::DEFAULT {
            String::new()
        } else {
            format!(", cluster {}", m.cluster)
        };
        let _ = writeln!(
            out,
            "{} ({}{cluster}): {} deployment(s), {:.3}/day; lead time {}; change failure rate {}; time to restore {}",
            m.service,
            m.environment,
            m.deployments,
            m.deployment_frequency_per_day,
            stats(m.lead_time.as_ref()),
            m.change_failure_rate.map_or("n/a".to_owned(), |r| format!(
                "{:.1}% ({} failed)",
                r * 100.0,
                m.failed_changes
            )),
            stats(m.time_to_restore.as_ref())
        );
    }
    out
}

/// The incident report as a Markdown review draft.
pub fn markdown(r: &IncidentReport) -> String {
    let a = &r.suspects.alert;
    let mut out = format!(
        "# Incident review (draft): {}\n\n",
        a.summary.as_deref().unwrap_or(&a.name)
    );
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(
        out,
        "| Alert | `{}` ({}) |",
        a.name,
        a.severity.as_deref().unwrap_or("-")
    );
    let _ = writeln!(out, "| Fingerprint | `{}` |", a.fingerprint);
    let _ = writeln!(
        out,
        "| Started | {} |",
        deploygraph_model::format_time(&a.starts_at)
    );
    let _ = writeln!(
        out,
        "| Resolved | {} |",
        a.ends_at
            .as_ref()
            .map_or("not yet".to_owned(), deploygraph_model::format_time)
    );
    if let Some(onset) = onset_text(a) {
        let _ = writeln!(out, "| Metric onset | {onset} |");
    }
    if let Some(health) = service_health_text(a) {
        let _ = writeln!(out, "| Services' health | {health} |");
    }
    let services: Vec<String> = r
        .suspects
        .services
        .iter()
        .map(|s| {
            let known = r.owners.iter().find(|o| o.service == *s);
            let mut about = Vec::new();
            if let Some(owner) = known.and_then(|o| o.owner.as_deref()) {
                about.push(format!("owner {owner}"));
            }
            if let Some(tier) = known.and_then(|o| o.tier.as_deref()) {
                about.push(format!("tier {tier}"));
            }
            if about.is_empty() {
                s.to_string()
            } else {
                format!("{s} ({})", about.join(", "))
            }
        })
        .collect();
    let _ = writeln!(
        out,
        "| Services | {} |\n",
        if services.is_empty() {
            "-".to_owned()
        } else {
            services.join(", ")
        }
    );

    out.push_str("## Suspects\n\n");
    if let Some(chaos) = &r.suspects.chaos {
        let _ = writeln!(
            out,
            "Attributed to chaos run `{}`: {}.\n",
            chaos.run_uid,
            chaos
                .reason
                .as_deref()
                .unwrap_or("a chaos experiment was running")
        );
    } else {
        if r.suspects.suspects.is_empty() {
            out.push_str(
                "No deployment or other change in the attribution window is a suspect.\n\n",
            );
        }
        let _ = writeln!(
            out,
            "Probability that no recorded change caused it (unexplained): {:.2}. Each suspect's confidence is the probability that it caused the alert.\n",
            r.suspects.unexplained
        );
    }
    for (i, v) in r.suspects.suspects.iter().enumerate() {
        if let Some(c) = &v.change {
            change_markdown(&mut out, i + 1, v, c);
            continue;
        }
        let Some(stored) = &v.deployment else {
            continue;
        };
        let d = &stored.deployment;
        let _ = writeln!(
            out,
            "### {}. {} {} — confidence {:.2}{}\n",
            i + 1,
            d.service,
            d.version.as_deref().unwrap_or_else(|| d.short_commit()),
            v.confidence_score,
            review_mark(v)
        );
        review_markdown(&mut out, v);
        let _ = writeln!(
            out,
            "Deployment `{}` to {} started {} ({}), commit `{}`{}{}.\n",
            d.uid,
            d.environment,
            deploygraph_model::format_time(&d.started_at),
            d.status.as_str(),
            d.commit_sha().unwrap_or("unknown"),
            d.commit
                .as_ref()
                .and_then(|c| c.author.as_ref())
                .map_or(String::new(), |a| format!(" by {a}")),
            d.actor
                .as_ref()
                .map_or(String::new(), |a| format!(", rolled out by {a}"))
        );
        for reason in &v.reasons {
            let _ = writeln!(out, "- {reason}");
        }
        if !d.changes.is_empty() {
            out.push_str("\n```diff\n");
            for c in &d.changes {
                let _ = writeln!(out, "# {} [{}]", c.path, c.kind.as_str());
                if let Some(b) = &c.before {
                    let _ = writeln!(out, "- {b}");
                }
                if let Some(after) = &c.after {
                    let _ = writeln!(out, "+ {after}");
                }
            }
            out.push_str("```\n");
        }
        out.push('\n');
    }

    out.push_str("## Other changes in the window\n\n");
    if r.changes.is_empty() {
        out.push_str(
            "No change that is not a rollout was recorded on these services before the alert.\n",
        );
    }
    for c in &r.changes {
        let suspect = r.suspects.suspects.iter().any(|v| v.uid == c.uid);
        let _ = writeln!(
            out,
            "- {} — `{}` {} of {} by {}{}{}",
            deploygraph_model::format_time(&c.at),
            c.uid,
            c.kind.as_str(),
            change_services(c),
            c.actor,
            c.summary
                .as_deref()
                .map_or(String::new(), |s| format!(": {s}")),
            if suspect { " (a suspect)" } else { "" }
        );
    }
    out.push('\n');

    out.push_str("## Timeline\n\n");
    if r.timeline.events.is_empty() {
        out.push_str("Nothing recorded.\n");
    }
    if r.timeline.truncated {
        out.push_str(
            "Only the newest events of the window are shown; older ones were left out.\n\n",
        );
    }
    for e in &r.timeline.events {
        let _ = writeln!(
            out,
            "- {} — {}",
            deploygraph_model::format_time(&e.at),
            e.summary
        );
    }

    out.push_str("\n## Infrastructure before the top suspect's rollout\n\n");
    match &r.snapshot {
        None => out.push_str("No snapshot was taken for it.\n"),
        Some(s) => {
            let _ = writeln!(
                out,
                "Snapshot `{}` taken {}: **{}**.\n\n| check | target | status | detail |\n|---|---|---|---|",
                s.uid,
                deploygraph_model::format_time(&s.taken_at),
                s.verdict.as_str()
            );
            for c in &s.checks {
                let mark = if c.status == Verdict::Fail {
                    "**fail**"
                } else {
                    c.status.as_str()
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {mark} | {} |",
                    c.kind,
                    c.target,
                    c.detail.replace('|', "\\|")
                );
            }
        }
    }

    out.push_str("\n## Chaos history\n\n");
    if r.chaos_history.is_empty() {
        out.push_str("No chaos experiment was recorded against these services.\n");
    }
    for run in &r.chaos_history {
        let _ = writeln!(
            out,
            "- {} `{}` ({}): {}{}",
            deploygraph_model::format_time(&run.started_at),
            run.experiment,
            run.scenario,
            run.verdict.as_str(),
            run.probe_success_pct
                .map_or(String::new(), |p| format!(", probes {p:.0}%"))
        );
    }

    out.push_str("\n## Canary analyses of the suspect deployments\n\n");
    canary_markdown(&mut out, r);
    rollback_markdown(&mut out, r);

    out.push_str("\n## DORA context (30 days before the alert)\n\n");
    out.push_str(&dora_text(&r.dora));

    out.push_str("\n## Diagram\n\n```mermaid\n");
    out.push_str(&r.mermaid);
    out.push_str("```\n");
    out
}

/// Each canary analysis of a suspect deployment: its verdict and baseline, then the rule of
/// each metric that failed.
fn canary_markdown(out: &mut String, r: &IncidentReport) {
    if r.canary_analyses.is_empty() {
        out.push_str("No canary analysis was recorded for the suspect deployments.\n");
    }
    for a in &r.canary_analyses {
        let version = r
            .suspects
            .suspects
            .iter()
            .filter_map(|s| s.deployment.as_ref())
            .find(|d| d.deployment.uid == a.deployment)
            .and_then(|d| d.deployment.version.clone())
            .map_or(String::new(), |v| format!(" {v}"));
        let _ = writeln!(
            out,
            "- `{}` ({}{version}): **{}** against the {} baseline, decided {} after {} round(s) \
             (template `{}`)",
            a.deployment,
            a.service.name,
            a.verdict.as_str(),
            a.baseline_kind.as_str(),
            deploygraph_model::format_time(&a.decided_at),
            a.analyses,
            a.template
        );
        for m in a.failing_metrics() {
            let _ = writeln!(
                out,
                "  - {}{} failed: {}",
                m.name,
                if m.critical { " (critical)" } else { "" },
                m.rule
            );
        }
    }
}

/// Each rollback of a suspect deployment: when, what, by whom, why, and what it restored.
fn rollback_markdown(out: &mut String, r: &IncidentReport) {
    if r.rollbacks.is_empty() {
        return;
    }
    out.push_str("\nRollbacks of the suspect deployments:\n\n");
    for rb in &r.rollbacks {
        let place = rb
            .namespace
            .as_ref()
            .map_or(rb.target.clone(), |ns| format!("{} in {ns}", rb.target));
        let restored = rb
            .restored
            .as_ref()
            .map_or(String::new(), |p| format!(", restoring `{p}`"));
        let _ = writeln!(
            out,
            "- `{}` ({}) {} {} by {} ({place}){restored}: {}",
            rb.deployment,
            rb.service.name,
            if rb.dry_run {
                "rollback planned (dry run)"
            } else {
                "**rolled back**"
            },
            deploygraph_model::format_time(&rb.at),
            rb.by,
            rb.reason
        );
    }
}

/// A suspect's verdict in the review draft, in bold: what the review decided comes first.
fn review_markdown(out: &mut String, v: &SuspectView) {
    if let Some(verdict) = &v.verdict {
        let mut text = verdict_text(verdict);
        if let Some(first) = text.get(..1) {
            text = format!("{}{}", first.to_uppercase(), &text[1..]);
        }
        let _ = writeln!(out, "**{text}.**\n");
    }
}

/// A change suspect in the review draft: headline, facts, reasons and its key-level diff.
fn change_markdown(out: &mut String, rank: usize, v: &SuspectView, c: &Change) {
    let _ = writeln!(
        out,
        "### {rank}. {} change of {} — confidence {:.2}{}\n",
        c.kind.as_str(),
        c.service_names(),
        v.confidence_score,
        review_mark(v)
    );
    review_markdown(out, v);
    let _ = writeln!(
        out,
        "Change `{}` of {} at {} by {}{}{}.\n",
        c.uid,
        change_services(c),
        deploygraph_model::format_time(&c.at),
        c.actor,
        c.summary
            .as_deref()
            .map_or(String::new(), |s| format!(": {s}")),
        c.link
            .as_deref()
            .map_or(String::new(), |l| format!(" ([link]({l}))"))
    );
    for reason in &v.reasons {
        let _ = writeln!(out, "- {reason}");
    }
    if !c.diff.is_empty() {
        out.push_str("\n```diff\n");
        for k in &c.diff {
            let _ = writeln!(out, "# {}", k.key);
            if let Some(b) = &k.before {
                let _ = writeln!(out, "- {b}");
            }
            if let Some(after) = &k.after {
                let _ = writeln!(out, "+ {after}");
            }
        }
        out.push_str("```\n");
    }
    out.push('\n');
}
