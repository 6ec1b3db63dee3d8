//! What API Gateway answers before or instead of a route's function, as the local gateway
//! reproduces it: unmatched requests reach the `$default` route's function, so they are
//! problem+json like every other error.

use integration_tests::Harness;

#[tokio::test]
async fn unmatched_requests_answer_problem_json() {
    let h = Harness::new().await;
    let alice = h.user("alice");
    for (method, path) in [("GET", "/nothing-here"), ("PUT", "/canvases"), ("POST", "/me"), ("GET", "/docs/nothing")] {
        let reply = h.send(method, path, vec![Harness::auth(&alice)], None).await;
        let problem = reply.assert_problem(404);
        assert!(problem["detail"].as_str().unwrap().contains("no route"), "{method} {path}: {problem}");
    }
    // A path parameter that is not an id (here not even valid percent-encoding) names nothing.
    h.send("GET", "/canvases/%zz", vec![Harness::auth(&alice)], None).await.assert_problem(404);
}
