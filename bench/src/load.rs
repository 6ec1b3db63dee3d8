//! Throughput of the local gateway (`local-stack up`) under wrk, and the parsing of its report.

use std::time::Duration;

use crate::BoxError;

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct LoadResult {
    pub route: String,
    pub requests: u64,
    pub seconds: f64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Non-2xx answers plus socket errors (connect, read, write, timeout).
    pub errors: u64,
    pub connections: u32,
}

fn duration_ms(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => value / 1000.0,
        "ms" => value,
        "s" => value * 1000.0,
        "m" => value * 60_000.0,
        _ => return None,
    })
}

/// Reads wrk's text report (run with `--latency`).
pub fn parse_wrk(route: &str, connections: u32, report: &str) -> Result<LoadResult, BoxError> {
    let mut result = LoadResult { route: route.to_owned(), connections, ..Default::default() };
    for line in report.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", value] => result.p50_ms = duration_ms(value).unwrap_or_default(),
            ["99%", value] => result.p99_ms = duration_ms(value).unwrap_or_default(),
            ["Requests/sec:", value] => result.rps = value.parse().unwrap_or_default(),
            [count, "requests", "in", seconds, ..] => {
                result.requests = count.parse().unwrap_or_default();
                result.seconds = duration_ms(seconds.trim_end_matches(',')).unwrap_or_default() / 1000.0;
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => result.errors += n.parse::<u64>().unwrap_or_default(),
            ["Socket", "errors:", rest @ ..] => {
                result.errors += rest.iter().filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok()).sum::<u64>()
            }
            _ => {}
        }
    }
    if result.requests == 0 {
        return Err(format!("wrk reported no requests:\n{report}").into());
    }
    Ok(result)
}

/// Runs wrk against `url` for `duration` with `connections` keep-alive connections.
pub async fn wrk(
    wrk: &str,
    route: &str,
    url: &str,
    token: &str,
    connections: u32,
    duration: Duration,
) -> Result<LoadResult, BoxError> {
    let out = tokio::process::Command::new(wrk)
        .args(["-t1", &format!("-c{connections}"), &format!("-d{}s", duration.as_secs()), "--latency"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(url)
        .output()
        .await
        .map_err(|e| format!("cannot run {wrk}: {e}"))?;
    let report = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("wrk failed: {}\n{report}", String::from_utf8_lossy(&out.stderr)).into());
    }
    parse_wrk(route, connections, &report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_wrk_report() {
        let report = "Running 10s test @ http://127.0.0.1:3000/canvases\n  1 threads and 8 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency     2.10ms  500.00us  20.00ms   90.00%\n  Latency Distribution\n     50%    1.95ms\n     75%    2.30ms\n     90%    2.80ms\n     99%    5.10ms\n  38000 requests in 10.00s, 20.00MB read\n  Non-2xx or 3xx responses: 3\n  Socket errors: connect 0, read 1, write 0, timeout 2\nRequests/sec:   3800.00\nTransfer/sec:      2.00MB\n";
        let r = parse_wrk("list", 8, report).unwrap();
        assert_eq!(r.requests, 38000);
        assert_eq!(r.errors, 6);
        assert!((r.p50_ms - 1.95).abs() < 1e-9 && (r.p99_ms - 5.1).abs() < 1e-9);
        assert!((r.rps - 3800.0).abs() < 1e-9 && (r.seconds - 10.0).abs() < 1e-9);
        assert!((duration_ms("850.00us").unwrap() - 0.85).abs() < 1e-9);
    }
}
