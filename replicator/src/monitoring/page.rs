//! The status page: server-rendered HTML, no script, reloaded by the browser
//! every 30 s (meta refresh). Every text from a server, the configuration or
//! a user is escaped; no appointment is ever on it (the monitor keeps none).

use std::fmt::Write;

use chrono::{DateTime, Utc};

use super::monitor::{ServerState, Snapshot};

/// Seconds between the page's reloads.
pub const REFRESH_SECONDS: u32 = 30;

/// Text as HTML text or attribute value. Five characters are enough for
/// text and quoted attributes, and the page puts nothing anywhere else.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

const STYLE: &str = "body{font-family:sans-serif;margin:0;background:#f4f5f7;color:#1d2433}\
header{background:#1f3b63;color:#fff;padding:12px 24px}h1{margin:0;font-size:22px}\
main{padding:8px 24px}h2{font-size:17px;margin:20px 0 8px}\
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #c9ced8;padding:4px 10px;text-align:left;vertical-align:top}\
th{background:#e3e7ee}.ok{color:#fff;background:#2e7d32}.bad{color:#fff;background:#c62828}.unknown{background:#e0e0e0}\
.verdict{display:inline-block;padding:6px 12px;font-weight:bold;white-space:pre-line}\
td.num{text-align:right}h3{font-size:15px;font-weight:normal;margin:12px 0 4px}ul{margin:4px 0 12px}";

/// The whole page.
pub fn render(snapshot: &Snapshot) -> String {
    let mut html = String::new();
    let _ = write_page(&mut html, snapshot);
    html
}

fn write_page(out: &mut String, s: &Snapshot) -> std::fmt::Result {
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <title>ews-calendar-replicator status</title><style>{STYLE}</style></head><body>\
         <header><h1>ews-calendar-replicator {}</h1></header><main>",
        escape(s.version)
    )?;

    out.push_str("<section id=\"service\"><h2>Service</h2>");
    match &s.health {
        Ok(text) => write!(out, "<p class=\"verdict ok\">Healthy: {}</p>", escape(text))?,
        Err(reason) => write!(
            out,
            "<p class=\"verdict bad\">Unhealthy: {}</p>",
            escape(reason)
        )?,
    }
    let doing = match s.cycle_running_since {
        Some(since) => format!("replicating (cycle started {})", time(since)),
        None if s.cycles.is_empty() => "starting: no cycle has run yet".to_owned(),
        None => "waiting for the next cycle".to_owned(),
    };
    write!(
        out,
        "<table><tr><th>state</th><td>{}</td></tr>\
         <tr><th>running since</th><td>{}</td></tr>\
         <tr><th>interval</th><td>{} min</td></tr>\
         <tr><th>last successful cycle</th><td>{}</td></tr></table></section>",
        escape(&doing),
        time(s.started_at),
        s.interval.as_secs() / 60,
        s.last_success_at
            .map(time)
            .unwrap_or_else(|| "none yet".to_owned())
    )?;

    out.push_str(
        "<section id=\"servers\"><h2>Servers</h2><table>\
         <tr><th>server</th><th>state</th><th>since</th><th>detail</th></tr>",
    );
    for (server, state) in &s.servers {
        let (class, label, since, detail) = match state {
            ServerState::Unknown => ("unknown", "not contacted yet", String::new(), ""),
            ServerState::Reachable { since } => ("ok", "reachable", time(*since), ""),
            ServerState::Unreachable { since, reason } => {
                ("bad", "unreachable", time(*since), reason.as_str())
            }
        };
        write!(
            out,
            "<tr><td>{}</td><td class=\"{class}\">{label}</td><td>{since}</td><td>{}</td></tr>",
            escape(server.display_name()),
            escape(detail)
        )?;
    }
    out.push_str("</table></section>");

    write_notifications(out, s)?;

    out.push_str("<section id=\"cycles\"><h2>Last cycles</h2>");
    if s.cycles.is_empty() {
        out.push_str("<p>No cycle has finished since the service started.</p>");
    } else {
        out.push_str(
            "<table><tr><th>started</th><th>duration</th><th>outcome</th><th>listed</th>\
             <th>written</th><th>unchanged</th><th>skipped</th><th>failed</th><th>error</th></tr>",
        );
        for c in &s.cycles {
            let class = match c.outcome {
                "success" => "ok",
                "failed" => "bad",
                _ => "unknown",
            };
            write!(
                out,
                "<tr><td>{}</td><td class=\"num\">{:.1} s</td><td class=\"{class}\">{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                time(c.started_at),
                c.duration.as_secs_f64(),
                c.outcome,
                c.listed,
                c.written,
                c.unchanged,
                c.skipped,
                c.failed,
                escape(c.error.as_deref().unwrap_or(""))
            )?;
        }
        out.push_str("</table>");
    }
    out.push_str("</section>");

    out.push_str("<section id=\"failing\"><h2>Failing users</h2>");
    if s.failing.is_empty() {
        out.push_str("<p>None in the last complete cycle.</p>");
    }
    for group in &s.failing {
        write!(
            out,
            "<h3>{} user{}: {}</h3><ul>",
            group.users.len(),
            if group.users.len() == 1 { "" } else { "s" },
            escape(&group.reason)
        )?;
        for user in &group.users {
            write!(out, "<li>{}</li>", escape(user))?;
        }
        out.push_str("</ul>");
    }
    out.push_str("</section></main></body></html>\n");
    Ok(())
}

/// Polled mailboxes named per reason on the page.
const POLLED_NAMES_SHOWN: usize = 10;

/// Exchange's change notifications: how many mailboxes are subscribed or
/// polled (and why), the event connections, the last event, and what the
/// push loop did.
fn write_notifications(out: &mut String, s: &Snapshot) -> std::fmt::Result {
    out.push_str("<section id=\"notifications\"><h2>Change notifications</h2>");
    let Some(feed) = &s.feed else {
        out.push_str(
            "<p>Off: every calendar is read by the periodic cycle only \
             (<code>exchange.notifications</code>).</p></section>",
        );
        return Ok(());
    };
    let p = &s.push;
    write!(
        out,
        "<table><tr><th>subscribed mailboxes</th><td class=\"num\">{}</td></tr>\
         <tr><th>polled mailboxes (cycle only)</th><td class=\"num\">{}</td></tr>\
         <tr><th>event connections</th><td class=\"num\">{}</td></tr>\
         <tr><th>last change event</th><td>{}</td></tr>\
         <tr><th>subscriptions made again</th><td class=\"num\">{}</td></tr>\
         <tr><th>change events (resyncs)</th><td class=\"num\">{} ({})</td></tr>\
         <tr><th>push refreshes (failed)</th><td class=\"num\">{} ({})</td></tr>\
         <tr><th>lists written by push refreshes</th><td class=\"num\">{}</td></tr>\
         <tr><th>last push refresh</th><td>{}</td></tr></table>",
        feed.subscribed,
        feed.polled.len(),
        feed.connections,
        feed.last_event_at
            .map(time)
            .unwrap_or_else(|| "none yet".to_owned()),
        feed.resubscribed,
        p.changes,
        p.resyncs,
        p.refreshes,
        p.failed_refreshes,
        p.written,
        p.last_refresh_at
            .map(time)
            .unwrap_or_else(|| "none yet".to_owned()),
    )?;
    let mut by_reason: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for (mailbox, reason) in &feed.polled {
        by_reason.entry(reason).or_default().push(mailbox);
    }
    let mut by_reason: Vec<_> = by_reason.into_iter().collect();
    by_reason.sort_by_key(|(_, mailboxes)| std::cmp::Reverse(mailboxes.len()));
    for (reason, mailboxes) in by_reason {
        write!(
            out,
            "<h3>{} polled: {}</h3><ul>",
            mailboxes.len(),
            escape(reason)
        )?;
        for mailbox in mailboxes.iter().take(POLLED_NAMES_SHOWN) {
            write!(out, "<li>{}</li>", escape(mailbox))?;
        }
        if mailboxes.len() > POLLED_NAMES_SHOWN {
            write!(
                out,
                "<li>and {} more</li>",
                mailboxes.len() - POLLED_NAMES_SHOWN
            )?;
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_from_servers_is_escaped() {
        assert_eq!(
            escape(r#"<script>alert("x") & 'y'</script>"#),
            "&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }
}
