//! The per-connection request rate limit: a token bucket, time passed in.

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Answer `RateLimited`; the request is not run.
    Refused,
    /// Too many refusals in a row: close the connection.
    Disconnect,
}

#[derive(Debug, Clone)]
pub struct Bucket {
    rate_per_ms: f64,
    burst: f64,
    tokens: f64,
    last_ms: u64,
    refused_in_row: u32,
    max_refused: u32,
}

impl Bucket {
    /// `rate` requests per second on average, bursts of `burst`; `max_refused` refusals in a
    /// row close the connection.
    pub fn new(rate: u32, burst: u32, max_refused: u32, now_ms: u64) -> Bucket {
        let burst = burst.max(1) as f64;
        Bucket {
            rate_per_ms: rate as f64 / 1000.0,
            burst,
            tokens: burst,
            last_ms: now_ms,
            refused_in_row: 0,
            max_refused: max_refused.max(1),
        }
    }

    pub fn take(&mut self, now_ms: u64) -> Verdict {
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64;
        self.last_ms = self.last_ms.max(now_ms);
        self.tokens = (self.tokens + elapsed * self.rate_per_ms).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.refused_in_row = 0;
            return Verdict::Allowed;
        }
        self.refused_in_row += 1;
        if self.refused_in_row >= self.max_refused {
            Verdict::Disconnect
        } else {
            Verdict::Refused
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refills_then_disconnects_repeat_offenders() {
        let mut b = Bucket::new(10, 5, 3, 0);
        for _ in 0..5 {
            assert_eq!(b.take(0), Verdict::Allowed);
        }
        assert_eq!(b.take(0), Verdict::Refused);
        assert_eq!(b.take(50), Verdict::Refused, "half a token after 50 ms");
        assert_eq!(b.take(100), Verdict::Allowed, "one token per 100 ms at 10/s");
        assert_eq!(b.take(100), Verdict::Refused);
        assert_eq!(b.take(100), Verdict::Refused);
        assert_eq!(b.take(100), Verdict::Disconnect, "three refusals in a row");
        // A clock going back refills nothing and breaks nothing.
        let mut c = Bucket::new(10, 1, 5, 1000);
        assert_eq!(c.take(1000), Verdict::Allowed);
        assert_eq!(c.take(10), Verdict::Refused);
    }
}
