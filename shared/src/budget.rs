//! Every answer fits Lambda's response limit whatever the stored data: pages stop at a size
//! budget as well as at their item count.

use serde::Serialize;

/// Lambda's limit on a synchronous response: the JSON it returns to API Gateway, in which the
/// body is one escaped string.
pub const LAMBDA_RESPONSE_MAX_BYTES: usize = 6_291_556;

/// The most a page's items may take once escaped into the response: the limit less room for the
/// status, headers and the page's own fields.
pub const PAGE_BUDGET_BYTES: usize = LAMBDA_RESPONSE_MAX_BYTES - 64 * 1024;

/// The bytes `value` adds to a Lambda response: its JSON, escaped into the body string (`"` and
/// `\` take two bytes, control characters six), and a separating comma. Counted while
/// serializing, without building the JSON: lists measure every item they return.
pub fn escaped_size<T: Serialize>(value: &T) -> usize {
    let mut counter = EscapedLen(1);
    // Writing to a counter cannot fail; a value that does not serialize counts its comma only.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

struct EscapedLen(usize);

impl std::io::Write for EscapedLen {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf
            .iter()
            .map(|b| match b {
                b'"' | b'\\' => 2,
                0..=0x1f => 6,
                _ => 1,
            })
            .sum::<usize>();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What a page's items have used of [`PAGE_BUDGET_BYTES`].
#[derive(Default)]
pub struct Budget {
    used: usize,
}

impl Budget {
    /// Counts `value` in and tells whether the page still fits with it. The first item always
    /// fits: a single item is far below the limit, DynamoDB items being at most 400 KB.
    pub fn admits<T: Serialize>(&mut self, value: &T) -> bool {
        let first = self.used == 0;
        self.used += escaped_size(value);
        first || self.used <= PAGE_BUDGET_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many of `items`, from the first, fit in one page.
    fn fitting<T: Serialize>(items: &[T]) -> usize {
        let mut budget = Budget::default();
        items.iter().take_while(|item| budget.admits(item)).count()
    }

    #[test]
    fn escaping_counts() {
        assert_eq!(escaped_size(&"ab"), 4 + 2 + 1);
        assert_eq!(escaped_size(&"\n"), 4 + 2 + 1 + 1);
        // {"a":"\u0001"}: 14 bytes, four quotes and a backslash doubled, a comma.
        assert_eq!(escaped_size(&serde_json::json!({"a": "\u{1}"})), 14 + 5 + 1);
    }

    #[test]
    fn pages_stop_at_the_budget() {
        let big = "x".repeat(340 * 1024);
        let items = vec![big; 20];
        let fit = fitting(&items);
        assert!(fit < 20 && fit > 10, "{fit}");
        assert!(fit * escaped_size(&items[0]) <= PAGE_BUDGET_BYTES);
        assert_eq!(fitting(&["a", "b"]), 2);
        assert_eq!(fitting(&[] as &[&str]), 0);
    }
}
