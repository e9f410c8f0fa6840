//! Renders scenario results as plain text or as Markdown tables (the
//! form `docs/benchmarks.md` takes them in).

use std::fmt::Write;

use crate::scenario::{Phase, SizeReport};

fn percent(part: usize, whole: usize) -> String {
    format!("{:.1} %", 100.0 * part as f64 / whole.max(1) as f64)
}

/// One block of text per network size.
pub fn text(reports: &[SizeReport]) -> String {
    let mut out = String::new();
    for r in reports {
        let s = &r.scenario;
        let _ = writeln!(
            out,
            "== {} nodes (seed {}, {} lookups, {} datasets on {} nodes each, {} refresh rounds)",
            s.nodes, s.seed, s.lookups, s.datasets, s.cluster_size, s.refresh_rounds
        );
        let _ = writeln!(
            out,
            "hop target: mean <= log2(N)/2 + 2 = {:.2}",
            r.hop_target()
        );
        text_phase(&mut out, "steady", &r.steady);
        let _ = writeln!(
            out,
            "churn: {} nodes left (silent), {} joined",
            r.departed, r.joined
        );
        text_phase(&mut out, "after churn", &r.churned);
        let c = &r.changes;
        let _ = writeln!(
            out,
            "  placement changes: {} of {} datasets lost a member ({} members lost); {} changed only by a closer newcomer",
            c.lost_a_member, c.compared, c.members_lost, c.closer_newcomer_only
        );
        let target_met = r.steady.lookups.hops.mean <= r.hop_target()
            && r.churned.lookups.hops.mean <= r.hop_target();
        let _ = writeln!(
            out,
            "  hop target met: {}",
            if target_met { "yes" } else { "no" }
        );
        out.push('\n');
    }
    out
}

fn text_phase(out: &mut String, name: &str, p: &Phase) {
    let l = &p.lookups;
    let _ = writeln!(
        out,
        "  {name}: {} live nodes, {:.1} routing-table entries per node",
        p.live_nodes, p.table_mean
    );
    let _ = writeln!(
        out,
        "    hops mean {:.2} p50 {} p99 {} max {}; requests/lookup mean {:.1} p99 {}; failed/lookup {:.2}",
        l.hops.mean,
        l.hops.p50,
        l.hops.p99,
        l.hops.max,
        l.requests.mean,
        l.requests.p99,
        l.failed_requests.mean
    );
    let _ = writeln!(
        out,
        "    latency p50 {} ms p99 {} ms; exact {} ({} of {}); timed out {}",
        l.latency_ms.p50,
        l.latency_ms.p99,
        percent(l.exact, l.lookups),
        l.exact,
        l.lookups,
        l.timed_out
    );
    let sp = &p.spread;
    let _ = writeln!(
        out,
        "    placement: {} datasets, per node min {} max {} (mean = ideal {:.2}), CV {:.2}, idle nodes {}, exact {}",
        sp.placed,
        sp.min,
        sp.max,
        sp.ideal,
        sp.coefficient_of_variation,
        sp.idle,
        percent(sp.exact, sp.placed)
    );
}

/// Two Markdown tables: lookups, then placement.
pub fn markdown(reports: &[SizeReport]) -> String {
    let mut out = String::new();
    out.push_str("| nodes | phase | table entries | hops mean | p50 | p99 | max | target | requests/lookup | failed/lookup | latency p50 | latency p99 | exact | timed out |\n");
    out.push_str("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in reports {
        let after = format!("after {} % churn", r.scenario.churn_percent);
        for (name, p) in [("steady", &r.steady), (after.as_str(), &r.churned)] {
            let l = &p.lookups;
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {:.2} | {} | {} | {} | {:.2} | {:.1} | {:.2} | {} ms | {} ms | {} | {} |",
                r.scenario.nodes,
                name,
                p.table_mean,
                l.hops.mean,
                l.hops.p50,
                l.hops.p99,
                l.hops.max,
                r.hop_target(),
                l.requests.mean,
                l.failed_requests.mean,
                l.latency_ms.p50,
                l.latency_ms.p99,
                percent(l.exact, l.lookups),
                l.timed_out
            );
        }
    }
    out.push('\n');
    out.push_str("| nodes | phase | datasets | ideal per node | min | max | CV | idle nodes | placement exact | lost a member | changed by a newcomer only |\n");
    out.push_str("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in reports {
        for (steady, p) in [(true, &r.steady), (false, &r.churned)] {
            let sp = &p.spread;
            let (phase, lost, newcomer) = if steady {
                ("steady".to_string(), "".to_string(), "".to_string())
            } else {
                let c = &r.changes;
                (
                    format!("after {} % churn", r.scenario.churn_percent),
                    percent(c.lost_a_member, c.compared),
                    percent(c.closer_newcomer_only, c.compared),
                )
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.2} | {} | {} | {:.2} | {} | {} | {} | {} |",
                r.scenario.nodes,
                phase,
                sp.placed,
                sp.ideal,
                sp.min,
                sp.max,
                sp.coefficient_of_variation,
                sp.idle,
                percent(sp.exact, sp.placed),
                lost,
                newcomer
            );
        }
    }
    out
}
