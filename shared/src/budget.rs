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
/// `\` take two bytes, control characters six), and a separating comma.
pub fn escaped_size<T: Serialize>(value: &T) -> usize {
    let json = serde_json::to_vec(value).unwrap_or_default();
    let escapes: usize = json
        .iter()
        .map(|b| match b {
            b'"' | b'\\' => 1,
            0..=0x1f => 5,
            _ => 0,
        })
        .sum();
    json.len() + escapes + 1
}

/// How many of `items`, from the first, fit in one page (at least one: a single item is far
/// below the limit, DynamoDB items being at most 400 KB).
pub fn fitting<T: Serialize>(items: &[T]) -> usize {
    let mut used = 0;
    for (count, item) in items.iter().enumerate() {
        used += escaped_size(item);
        if used > PAGE_BUDGET_BYTES {
            return count.max(1);
        }
    }
    items.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_counts() {
        assert_eq!(escaped_size(&"ab"), 4 + 2 + 1);
        assert_eq!(escaped_size(&"\n"), 4 + 2 + 1 + 1);
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
