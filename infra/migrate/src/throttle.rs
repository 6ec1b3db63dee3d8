//! A token bucket over DynamoDB capacity units. A request waits until the bucket is not in
//! debt and takes its estimated cost; when DynamoDB answers, the estimate is settled against
//! what it reports consumed (`ReturnConsumedCapacity`). So consumption averages at most `rate`
//! units per second, whatever a request turns out to cost, even with requests in flight.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

#[derive(Debug)]
pub struct Throttle {
    /// Units per second; `None`: unbounded.
    rate: Option<f64>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    tokens: f64,
    at: Instant,
    consumed: f64,
}

impl Throttle {
    /// At most `rate` units per second on average, with bursts of up to one second's worth.
    pub fn new(rate: Option<f64>) -> Self {
        let rate = rate.filter(|r| r.is_finite() && *r > 0.0);
        Self { rate, state: Mutex::new(State { tokens: rate.unwrap_or(0.0), at: Instant::now(), consumed: 0.0 }) }
    }

    fn refill(&self, state: &mut State) {
        if let Some(rate) = self.rate {
            let now = Instant::now();
            state.tokens = (state.tokens + rate * now.duration_since(state.at).as_secs_f64()).min(rate);
            state.at = now;
        }
    }

    /// Waits until a request estimated to cost `estimate` units may be sent, and takes them.
    pub async fn take(&self, estimate: f64) {
        loop {
            let wait = {
                let mut state = self.state.lock().expect("throttle lock");
                self.refill(&mut state);
                match self.rate {
                    Some(rate) if state.tokens <= 0.0 => Duration::from_secs_f64((0.001 - state.tokens) / rate),
                    _ => {
                        state.tokens -= estimate;
                        return;
                    }
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Replaces a request's estimate by what it consumed.
    pub fn settle(&self, estimate: f64, consumed: f64) {
        let mut state = self.state.lock().expect("throttle lock");
        self.refill(&mut state);
        state.tokens += estimate - consumed;
        state.consumed += consumed;
    }

    /// Units consumed so far.
    pub fn consumed(&self) -> f64 {
        self.state.lock().expect("throttle lock").consumed
    }

    pub fn rate(&self) -> Option<f64> {
        self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn consumption_is_held_to_the_rate() {
        let throttle = Throttle::new(Some(200.0));
        let start = Instant::now();
        for _ in 0..40 {
            throttle.take(1.0).await;
            throttle.settle(1.0, 10.0); // 400 units at 200/s: the first 200 are the burst, the rest take ~1 s
        }
        let elapsed = start.elapsed().as_secs_f64();
        assert!(elapsed >= 0.9, "400 units at 200/s with a 200 burst take about a second, took {elapsed}");
        assert!(elapsed < 3.0, "{elapsed}");
        assert_eq!(throttle.consumed(), 400.0);
    }

    #[tokio::test]
    async fn estimates_taken_up_front_bound_requests_in_flight() {
        let throttle = Throttle::new(Some(100.0));
        let start = Instant::now();
        for _ in 0..30 {
            throttle.take(10.0).await; // never settled yet: as if all were still in flight
        }
        let elapsed = start.elapsed().as_secs_f64();
        assert!(elapsed >= 1.9, "300 units at 100/s with a 100 burst take about 2 s, took {elapsed}");
    }

    #[tokio::test]
    async fn unbounded_never_waits() {
        let throttle = Throttle::new(None);
        let start = Instant::now();
        for _ in 0..1000 {
            throttle.take(1.0).await;
            throttle.settle(1.0, 100.0);
        }
        assert!(start.elapsed() < Duration::from_millis(200));
    }
}
