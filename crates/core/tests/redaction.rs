//! Secret redaction at its public boundary: what goes in, what comes out, what is counted.
//!
//! Every credential here is fake, and assembled at run time from pieces so that this file
//! holds no credential-shaped literal: secret scanners (deploy-gate's own among them)
//! read test files too.

use std::borrow::Cow;

use gate_core::{Redactor, SecretKind};

fn aws_access_key_id() -> String {
    ["AKIA", "Q3VZ7N2PLK4TXW8R"].concat()
}

#[test]
fn aws_documentation_example_key_ids_are_not_secrets() {
    // AWS's own docs and SDK tests use this id; flagging it would block every commit
    // that copies an example.
    let example = ["AKIA", "IOSFODNN7EXAMPLE"].concat();
    let line = format!("aws_access_key_id = {example}");
    let redacted = Redactor::new().redact(&line);
    assert!(redacted.kinds.is_empty(), "{:?}", redacted.kinds);
    assert_eq!(redacted.text, line);
}

fn aws_secret_key() -> String {
    ["wJalrXUtnFEMI/K7MDENG/", "bPxRfiCYEXAMPLEKEY"].concat()
}

fn github_token() -> String {
    ["ghp_", "FAKE0123456789", "abcdefghijklmnopqrstuv"].concat()
}

fn github_fine_grained_token() -> String {
    format!("github_pat_11FAKE{}_{}xy", "0".repeat(16), "Fk9".repeat(19))
}

fn gitlab_token() -> String {
    ["glpat-", "FAKEfake0123456789ab"].concat()
}

fn slack_token() -> String {
    [
        "xoxb-",
        "0000000000-0000000000000-",
        "FAKEfakeFAKEfakeFAKEfake",
    ]
    .concat()
}

fn slack_webhook_path() -> String {
    ["T00000000/", "B00000000/", "FAKEfakeFAKEfakeFAKEfake"].concat()
}

fn stripe_key() -> String {
    ["sk_live_", "FAKEfake", "0000000000000000"].concat()
}

fn jwt() -> String {
    [
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
        ".",
        "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkZha2UiLCJpYXQiOjE1MTYyMzkwMjJ9",
        ".",
        "FAKEsignatureFAKEsignature_FAKEsignature0",
    ]
    .concat()
}

fn anthropic_key() -> String {
    ["sk-ant-api03-", "FAKEfake0123456789FAKEfake0123456789-AA"].concat()
}

fn openai_key() -> String {
    ["sk-proj-", "FAKEfake0123456789_FAKEfake0123456789"].concat()
}

fn google_api_key() -> String {
    let key = ["AIza", "SyFAKEfakeFAKEfake0123456789FAKEfak"].concat();
    assert_eq!(key.len(), 39);
    key
}

fn npm_token() -> String {
    ["npm_", "FAKEfake0123456789", "FAKEfake0123456789"].concat()
}

/// A random-looking value for generic assignments.
fn random_value() -> String {
    ["q8Zt3Vw9", "Lm2Xr7Pk5Ns1"].concat()
}

fn key_block() -> Vec<String> {
    vec![
        ["-----BEGIN ", "RSA PRIVATE KEY-----"].concat(),
        [
            "MIIEowIBAAKCAQEA",
            "fakeFAKEfakeFAKEfakeFAKEfakeFAKEfakeFAKEfakeFAKE0000",
        ]
        .concat(),
        [
            "q8Zt3Vw9Lm2Xr7Pk5Ns1",
            "FAKEfakeFAKEfakeFAKEfakeFAKEfakeFAKEfake0000==",
        ]
        .concat(),
        ["-----END ", "RSA PRIVATE KEY-----"].concat(),
    ]
}

/// One line with one secret in it, and what redaction must make of it.
struct Case {
    line: String,
    secret: String,
    expected: String,
    kinds: Vec<SecretKind>,
}

fn case(line: String, secret: String, expected: &str, kinds: &[SecretKind]) -> Case {
    Case {
        line,
        secret,
        expected: expected.to_string(),
        kinds: kinds.to_vec(),
    }
}

fn cases() -> Vec<Case> {
    use SecretKind::*;
    let value = random_value();
    vec![
        case(
            format!("aws_access_key_id = {}", aws_access_key_id()),
            aws_access_key_id(),
            "aws_access_key_id = [REDACTED:aws_access_key]",
            &[AwsAccessKey],
        ),
        case(
            format!("aws_secret_access_key = {}", aws_secret_key()),
            aws_secret_key(),
            "aws_secret_access_key = [REDACTED:aws_secret_key]",
            &[AwsSecretKey],
        ),
        case(
            format!("deploy-bot,{},{}", aws_access_key_id(), aws_secret_key()),
            aws_secret_key(),
            "deploy-bot,[REDACTED:aws_access_key],[REDACTED:aws_secret_key]",
            &[AwsAccessKey, AwsSecretKey],
        ),
        case(
            format!("GITHUB_TOKEN={}", github_token()),
            github_token(),
            "GITHUB_TOKEN=[REDACTED:github_token]",
            &[GithubToken],
        ),
        case(
            format!(
                "gh auth login --with-token <<< {}",
                github_fine_grained_token()
            ),
            github_fine_grained_token(),
            "gh auth login --with-token <<< [REDACTED:github_token]",
            &[GithubToken],
        ),
        case(
            format!(
                "git clone https://oauth2:{}@gitlab.example.com/x.git",
                gitlab_token()
            ),
            gitlab_token(),
            "git clone https://oauth2:[REDACTED:gitlab_token]@gitlab.example.com/x.git",
            &[GitlabToken],
        ),
        case(
            format!("slack_bot: \"{}\"", slack_token()),
            slack_token(),
            "slack_bot: \"[REDACTED:slack_token]\"",
            &[SlackToken],
        ),
        case(
            format!(
                "SLACK_WEBHOOK_URL: https://hooks.slack.com/services/{}",
                slack_webhook_path()
            ),
            slack_webhook_path(),
            "SLACK_WEBHOOK_URL: https://hooks.slack.com/services/[REDACTED:slack_webhook]",
            &[SlackWebhook],
        ),
        case(
            format!("Stripe.api_key = '{}'", stripe_key()),
            stripe_key(),
            "Stripe.api_key = '[REDACTED:stripe_key]'",
            &[StripeKey],
        ),
        case(
            format!(
                "curl -H 'Authorization: Bearer {}' https://api.example.com",
                jwt()
            ),
            jwt(),
            "curl -H 'Authorization: Bearer [REDACTED:jwt]' https://api.example.com",
            &[Jwt],
        ),
        case(
            format!("session_token = \"{}\"", jwt()),
            jwt(),
            "session_token = \"[REDACTED:jwt]\"",
            &[Jwt],
        ),
        case(
            "DATABASE_URL=postgres://app:Zq8-vW2rXt@db:5432/x".to_string(),
            "Zq8-vW2rXt".to_string(),
            "DATABASE_URL=postgres://app:[REDACTED:url_password]@db:5432/x",
            &[UrlPassword],
        ),
        case(
            "cache: redis://:n0t-A-real-pw@cache.internal:6379/0".to_string(),
            "n0t-A-real-pw".to_string(),
            "cache: redis://:[REDACTED:url_password]@cache.internal:6379/0",
            &[UrlPassword],
        ),
        case(
            format!("api_key = \"{value}\""),
            value.clone(),
            "api_key = \"[REDACTED:generic_secret]\"",
            &[GenericSecret],
        ),
        case(
            format!("  password: {value}"),
            value.clone(),
            "  password: [REDACTED:generic_secret]",
            &[GenericSecret],
        ),
        case(
            format!("{{\"client_secret\": \"{value}\", \"client_id\": \"deploy-gate\"}}"),
            value.clone(),
            "{\"client_secret\": \"[REDACTED:generic_secret]\", \"client_id\": \"deploy-gate\"}",
            &[GenericSecret],
        ),
        case(
            format!("export DB_PASSWORD={value}"),
            value.clone(),
            "export DB_PASSWORD=[REDACTED:generic_secret]",
            &[GenericSecret],
        ),
        case(
            format!("mysql --user app --password {value} shop"),
            value.clone(),
            "mysql --user app --password [REDACTED:generic_secret] shop",
            &[GenericSecret],
        ),
        case(
            format!("\tstatic ref AUTH_TOKEN: &str = \"{value}\";"),
            value.clone(),
            "\tstatic ref AUTH_TOKEN: &str = \"[REDACTED:generic_secret]\";",
            &[GenericSecret],
        ),
        case(
            "db_password = \"P@ssw0rd-2031!\"".to_string(),
            "P@ssw0rd-2031!".to_string(),
            "db_password = \"[REDACTED:generic_secret]\"",
            &[GenericSecret],
        ),
        case(
            format!("ANTHROPIC_API_KEY={}", anthropic_key()),
            anthropic_key(),
            "ANTHROPIC_API_KEY=[REDACTED:anthropic_key]",
            &[AnthropicKey],
        ),
        case(
            format!("openai.api_key = \"{}\"", openai_key()),
            openai_key(),
            "openai.api_key = \"[REDACTED:openai_key]\"",
            &[OpenAiKey],
        ),
        case(
            format!(
                "const firebaseConfig = {{ apiKey: \"{}\" }};",
                google_api_key()
            ),
            google_api_key(),
            "const firebaseConfig = { apiKey: \"[REDACTED:google_api_key]\" };",
            &[GoogleApiKey],
        ),
        case(
            format!("//registry.npmjs.org/:_authToken={}", npm_token()),
            npm_token(),
            "//registry.npmjs.org/:_authToken=[REDACTED:npm_token]",
            &[NpmToken],
        ),
        case(
            format!(
                "\"private_key\": \"{}\\n{}\\n{}\\n\",",
                key_block()[0],
                key_block()[1],
                key_block()[3]
            ),
            key_block()[1].clone(),
            "\"private_key\": \"[REDACTED:private_key]\\n\",",
            &[PrivateKey],
        ),
    ]
}

fn assert_case(redactor: &Redactor, case: &Case) {
    let redacted = redactor.redact(&case.line);
    assert_eq!(redacted.text, case.expected, "input: {}", case.line);
    assert_eq!(redacted.kinds, case.kinds, "input: {}", case.line);
    assert!(
        !redacted.text.contains(&case.secret),
        "secret survived in {}",
        redacted.text
    );
}

fn case_with(secret: impl Fn() -> String) -> Case {
    let secret = secret();
    cases()
        .into_iter()
        .find(|case| case.secret == secret)
        .unwrap_or_else(|| panic!("no case for {secret}"))
}

#[test]
fn aws_access_key_is_replaced_and_counted() {
    assert_case(&Redactor::new(), &case_with(aws_access_key_id));
}

#[test]
fn aws_secret_key_is_replaced_by_name_and_next_to_an_access_key() {
    let redactor = Redactor::new();
    for case in cases()
        .iter()
        .filter(|case| case.secret == aws_secret_key())
    {
        assert_case(&redactor, case);
    }
    // The AWS SDK form: id and secret on consecutive lines, no telling names.
    let mut lines = redactor.line_redactor();
    let first = format!("    \"{}\",", aws_access_key_id());
    let second = format!("    \"{}\",", aws_secret_key());
    assert_eq!(
        lines.redact_line(&first).text,
        "    \"[REDACTED:aws_access_key]\","
    );
    let redacted = lines.redact_line(&second);
    assert_eq!(redacted.text, "    \"[REDACTED:aws_secret_key]\",");
    assert_eq!(redacted.kinds, [SecretKind::AwsSecretKey]);
}

#[test]
fn github_tokens_classic_and_fine_grained_are_replaced() {
    assert_case(&Redactor::new(), &case_with(github_token));
    assert_case(&Redactor::new(), &case_with(github_fine_grained_token));
}

#[test]
fn gitlab_token_in_a_clone_url_counts_once_as_gitlab_token() {
    assert_case(&Redactor::new(), &case_with(gitlab_token));
}

#[test]
fn slack_token_and_webhook_are_replaced() {
    assert_case(&Redactor::new(), &case_with(slack_token));
    assert_case(&Redactor::new(), &case_with(slack_webhook_path));
}

#[test]
fn stripe_secret_key_is_replaced_but_publishable_key_is_not() {
    let redactor = Redactor::new();
    assert_case(&redactor, &case_with(stripe_key));
    let publishable = format!(
        "publishable_key: \"{}\"",
        ["pk_live_", "FAKEfake0000000000000000"].concat()
    );
    let redacted = redactor.redact(&publishable);
    assert!(
        matches!(redacted.text, Cow::Borrowed(_)),
        "{}",
        redacted.text
    );
}

#[test]
fn jwt_inside_a_token_assignment_counts_once() {
    let redactor = Redactor::new();
    for case in cases().iter().filter(|case| case.secret == jwt()) {
        assert_case(&redactor, case);
    }
}

#[test]
fn url_password_is_replaced_and_host_kept() {
    let redactor = Redactor::new();
    for case in cases()
        .iter()
        .filter(|case| case.kinds == [SecretKind::UrlPassword])
    {
        assert_case(&redactor, case);
    }
    let redacted = redactor.redact("amqp://deploy:s3cr3t@p@ss@rabbit.internal:5672/%2f");
    assert_eq!(
        redacted.text,
        "amqp://deploy:[REDACTED:url_password]@rabbit.internal:5672/%2f"
    );
}

#[test]
fn generic_assignments_keep_the_name_and_replace_the_value() {
    let redactor = Redactor::new();
    for case in cases()
        .iter()
        .filter(|case| case.kinds == [SecretKind::GenericSecret])
    {
        assert_case(&redactor, case);
    }
}

#[test]
fn a_plain_letters_and_digits_password_in_an_env_file_is_replaced_but_a_version_is_not() {
    let redactor = Redactor::new();
    let redacted = redactor.redact("DB_PASSWORD=hunter2hunter2");
    assert_eq!(redacted.text, "DB_PASSWORD=[REDACTED:generic_secret]");
    assert_eq!(redacted.kinds, [SecretKind::GenericSecret]);
    for line in ["db_password = \"release2024\"", "password: correcthorse"] {
        let redacted = redactor.redact(line);
        assert!(
            matches!(redacted.text, Cow::Borrowed(_)),
            "{line} -> {}",
            redacted.text
        );
    }
}

#[test]
fn model_provider_npm_and_google_keys_are_replaced() {
    let redactor = Redactor::new();
    for secret in [anthropic_key, openai_key, google_api_key, npm_token] {
        assert_case(&redactor, &case_with(secret));
    }
}

#[test]
fn kubernetes_env_value_under_a_secret_name_is_replaced() {
    let redactor = Redactor::new();
    let manifest = format!(
        "        - name: DB_PASSWORD\n          value: \"{}\"\n        - name: LOG_LEVEL\n          value: \"{}\"\n",
        random_value(),
        "Xk9fQ2mZp7Lw4Rt8"
    );
    let redacted = redactor.redact(&manifest);
    assert_eq!(
        redacted.text,
        "        - name: DB_PASSWORD\n          value: \"[REDACTED:generic_secret]\"\n        - name: LOG_LEVEL\n          value: \"Xk9fQ2mZp7Lw4Rt8\"\n"
    );
    assert_eq!(redacted.kinds, [SecretKind::GenericSecret]);
}

#[test]
fn private_key_block_is_redacted_line_by_line_and_counted_once() {
    let redactor = Redactor::new();
    let mut lines = redactor.line_redactor();
    let block = key_block();
    let mut out = Vec::new();
    let mut kinds = Vec::new();
    for line in ["key: |".to_string()].iter().chain(
        block
            .iter()
            .map(|line| format!("  {line}"))
            .collect::<Vec<_>>()
            .iter(),
    ) {
        let redacted = lines.redact_line(line);
        out.push(redacted.text.into_owned());
        kinds.extend(redacted.kinds);
    }
    out.push(lines.redact_line("user: deploy").text.into_owned());
    assert_eq!(
        out,
        [
            "key: |",
            "  [REDACTED:private_key]",
            "  [REDACTED:private_key]",
            "  [REDACTED:private_key]",
            "  [REDACTED:private_key]",
            "user: deploy",
        ]
    );
    assert_eq!(kinds, [SecretKind::PrivateKey]);
}

#[test]
fn private_key_block_in_a_multi_line_text_is_redacted_whole() {
    let redactor = Redactor::new();
    let block = key_block();
    let text = format!(
        "id_rsa for the deploy bot:\r\n{}\r\n\r\nrotate yearly.\r\n",
        block.join("\r\n")
    );
    let redacted = redactor.redact(&text);
    assert_eq!(
        redacted.text,
        "id_rsa for the deploy bot:\r\n[REDACTED:private_key]\r\n[REDACTED:private_key]\r\n[REDACTED:private_key]\r\n[REDACTED:private_key]\r\n\r\nrotate yearly.\r\n"
    );
    assert_eq!(redacted.kinds, [SecretKind::PrivateKey]);
    for line in &block[1..3] {
        assert!(!redacted.text.contains(line.as_str()));
    }
}

#[test]
fn pgp_and_openssh_blocks_are_private_keys_too() {
    let redactor = Redactor::new();
    for kind in [
        "PGP PRIVATE KEY BLOCK",
        "OPENSSH PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
        "PRIVATE KEY",
    ] {
        let text = format!(
            "-----BEGIN {kind}-----\nVersion: Fake 1.0\n\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAAB\n=FaKe\n-----END {kind}-----\nafter"
        );
        let redacted = redactor.redact(&text);
        assert_eq!(
            redacted.text,
            "[REDACTED:private_key]\n[REDACTED:private_key]\n\n[REDACTED:private_key]\n[REDACTED:private_key]\n[REDACTED:private_key]\nafter",
            "{kind}"
        );
        assert_eq!(redacted.kinds, [SecretKind::PrivateKey]);
    }
}

#[test]
fn reset_forgets_an_unterminated_key_block() {
    let redactor = Redactor::new();
    let block = key_block();
    let mut lines = redactor.line_redactor();
    lines.redact_line(&block[0]);
    lines.redact_line(&block[1]);
    // The file ended inside the block (a truncated diff). Without a reset the next
    // file's base64-looking first line would be taken for key material…
    let mut without_reset = redactor.line_redactor();
    without_reset.redact_line(&block[0]);
    assert_eq!(
        without_reset.redact_line("SGVsbG8").text,
        "[REDACTED:private_key]"
    );
    // …with it, it is ordinary text.
    lines.reset();
    let redacted = lines.redact_line("SGVsbG8");
    assert!(matches!(redacted.text, Cow::Borrowed("SGVsbG8")));
}

#[test]
fn code_that_mentions_a_begin_marker_is_not_a_key() {
    let redactor = Redactor::new();
    let code = format!(
        "if line.starts_with(\"{}\") {{\n    return true;\n}}",
        ["-----BEGIN ", "RSA PRIVATE KEY-----"].concat()
    );
    let redacted = redactor.redact(&code);
    assert!(
        matches!(redacted.text, Cow::Borrowed(_)),
        "{}",
        redacted.text
    );
    assert!(redacted.kinds.is_empty());
}

#[test]
fn a_key_block_that_stops_looking_like_one_ends_the_redaction() {
    let redactor = Redactor::new();
    let text = format!(
        "KEY=\"{}\\nMIIEowIBAAKCAQEA\nfn main() {{}}",
        key_block()[0]
    );
    let redacted = redactor.redact(&text);
    assert_eq!(redacted.text, "KEY=\"[REDACTED:private_key]\nfn main() {}");
    assert_eq!(redacted.kinds, [SecretKind::PrivateKey]);
}

#[test]
fn placeholders_and_env_interpolation_are_not_redacted() {
    let redactor = Redactor::new();
    for line in [
        "password = ${DB_PASSWORD}",
        "password: \"${DB_PASSWORD:?required}\"",
        "token: \"{{ .Values.token }}\"",
        "token: ${{ secrets.GITHUB_TOKEN }}",
        "api_key = os.environ[\"API_KEY\"]",
        "api_key = os.getenv('API_KEY', '')",
        "const token = process.env.SLACK_BOT_TOKEN;",
        "SECRET_KEY = get_random_secret_key()",
        "API_TOKEN = settings.API_TOKEN",
        "password: <password>",
        "password = \"********\"",
        "password = \"changeme\"",
        "PGPASSWORD=$DB_PASSWORD psql",
        "secret_key_base: <%= ENV[\"SECRET_KEY_BASE\"] %>",
        "api_key: your-api-key-here",
        "password_min_length = 12",
        "secret_name = \"prod/db\"",
        "secret_name = \"prod/database/credentials-v2\"",
        "token_url = \"https://auth.example.com/oauth2/token\"",
        "private_key_path = \"/etc/deploy-gate/keys/deploy.pem\"",
        "max_tokens = 4096",
        "tokenizer = \"cl100k_base\"",
        "  input_tokens: 1234,",
        "the token expires after an hour, so the password must be rotated",
        "fn check(password: &str, token: Option<String>) -> bool {",
        "let token = get_token(&client)?;",
        "    password: String,",
        "DATABASE_URL=postgres://app:${DB_PASSWORD}@db:5432/x",
        "AMQP_URL=amqp://guest:guest@localhost:5672/%2f",
        "https://user:****@example.com/",
        "postgres://user:password@localhost/db",
        "\"secrets\": [{\"kind\": \"github_token\", \"file\": \"a\"}]",
        "password: [REDACTED:generic_secret]",
        "Authorization: Bearer $TOKEN",
        "head = \"da39a3ee5e6b4b0d3255bfef95601890afd80709\"",
        "if password == \"hunter2-but-longer\" {",
        "    brace_token: syn::token::Brace,",
        "    _token_start: &Self::Checkpoint,",
        "    my_private_key: EphemeralPrivateKey,",
        "    generate_private_key: x25519_generate_private_key,",
        "const NUMBER_TOKEN: &str = \"$serde_json::private::Number\";",
        "    AttributeOID.CHALLENGE_PASSWORD: \"challengePassword\",",
        "#password_encryption = scram-sha-256\t# scram-sha-256 or md5",
        "/// https://user@pass:example.com:1234/foo/bar",
        "let proxy = Proxy::all(\"http://letme:in@proxy.local\");",
        "api_key_env = \"ANTHROPIC_API_KEY\"",
        "let api_key = settings.anthropic.api_key.expose();",
        "headers.insert(\"x-api-key\", HeaderValue::from_str(&key)?);",
    ] {
        let redacted = redactor.redact(line);
        assert!(
            matches!(redacted.text, Cow::Borrowed(_)),
            "redacted {line:?} into {:?}",
            redacted.text
        );
        assert!(redacted.kinds.is_empty(), "{line}");
    }
}

#[test]
fn ordinary_code_lines_come_back_borrowed() {
    let redactor = Redactor::new();
    let mut lines = redactor.line_redactor();
    for line in [
        "fn main() {",
        "    let n_events = queue.len();",
        "    // Decide whether this change may ship.",
        "import os, sys",
        "SELECT id, email FROM users WHERE created_at > now() - interval '1 day';",
        "",
        "}",
        "- uses: actions/checkout@v4",
        "  \"version\": \"1.2.3\",",
    ] {
        let redacted = lines.redact_line(line);
        assert!(matches!(redacted.text, Cow::Borrowed(_)), "{line}");
        assert!(redacted.kinds.is_empty());
    }
}

#[test]
fn same_input_gives_same_output_every_time() {
    let text: String = cases()
        .iter()
        .map(|case| case.line.clone() + "\n")
        .collect();
    let first = Redactor::new().redact(&text);
    let second = Redactor::new().redact(&text);
    let cloned = Redactor::new().clone().redact(&text);
    assert_eq!(first, second);
    assert_eq!(first, cloned);
    let expected_kinds: Vec<SecretKind> =
        cases().iter().flat_map(|case| case.kinds.clone()).collect();
    assert_eq!(first.kinds, expected_kinds);
}

#[test]
fn redacting_redacted_text_changes_nothing_and_counts_nothing() {
    let redactor = Redactor::new();
    for case in cases() {
        let once = redactor.redact(&case.line);
        let twice = redactor.redact(&once.text);
        assert_eq!(twice.text, once.text);
        assert!(
            twice.kinds.is_empty(),
            "{} counted again as {:?}",
            once.text,
            twice.kinds
        );
    }
}

#[test]
fn no_test_secret_survives_anywhere_in_the_output() {
    let redactor = Redactor::new();
    for case in cases() {
        // Alone, and in a multi-line text next to every other case.
        assert_case(&redactor, &case);
    }
    let text: String = cases()
        .iter()
        .map(|case| case.line.clone() + "\n")
        .collect();
    let redacted = redactor.redact(&text);
    for case in cases() {
        assert!(
            !redacted.text.contains(&case.secret),
            "{} survived",
            case.secret
        );
    }
    let block = key_block().join("\n");
    let redacted = redactor.redact(&block);
    for line in key_block().iter().skip(1).take(2) {
        assert!(!redacted.text.contains(line.as_str()));
    }
}

#[test]
fn kinds_serialize_as_their_tags() {
    use SecretKind::*;
    for kind in [
        AwsAccessKey,
        AwsSecretKey,
        PrivateKey,
        GithubToken,
        GitlabToken,
        SlackToken,
        SlackWebhook,
        StripeKey,
        Jwt,
        UrlPassword,
        GenericSecret,
        AnthropicKey,
        OpenAiKey,
        GoogleApiKey,
        NpmToken,
    ] {
        assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        assert_eq!(kind.to_string(), kind.as_str());
    }
}

/// A small xorshift generator: deterministic, so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn printable_line(&mut self, max_len: u64) -> String {
        let len = self.below(max_len + 1);
        (0..len)
            .map(|_| char::from(b' ' + self.below(95) as u8))
            .collect()
    }
}

/// Substrings that may start a detection; random lines holding one are skipped.
const TRIGGERS: &[&str] = &[
    "akia",
    "asia",
    "agpa",
    "aida",
    "aroa",
    "aipa",
    "anpa",
    "anva",
    "abia",
    "acca",
    "a3t",
    "begin",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "gldt-",
    "glrt-",
    "gl",
    "gr1348941",
    "xox",
    "xapp-",
    "hooks.slack.com",
    "sk_",
    "rk_",
    "whsec_",
    "eyj",
    "://",
    "sk-",
    "t3blbkfj",
    "aiza",
    "npm_",
    "bearer",
    "authorization",
    "pass",
    "pwd",
    "secret",
    "token",
    "key",
];

#[test]
fn random_printable_lines_without_triggers_come_back_unchanged() {
    let redactor = Redactor::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut lines = redactor.line_redactor();
    let mut n_checked = 0;
    for _ in 0..20_000 {
        let line = rng.printable_line(120);
        let lower = line.to_ascii_lowercase();
        if TRIGGERS.iter().any(|trigger| lower.contains(trigger)) {
            continue;
        }
        n_checked += 1;
        let redacted = lines.redact_line(&line);
        assert!(
            matches!(redacted.text, Cow::Borrowed(_)),
            "{line:?} became {:?}",
            redacted.text
        );
        assert!(redacted.kinds.is_empty());
        assert!(matches!(redactor.redact(&line).text, Cow::Borrowed(_)));
    }
    assert!(
        n_checked > 10_000,
        "only {n_checked} lines were trigger-free"
    );
}

#[test]
fn token_shaped_secrets_vanish_from_random_surroundings() {
    let redactor = Redactor::new();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let secrets = [
        aws_access_key_id(),
        github_token(),
        github_fine_grained_token(),
        gitlab_token(),
        slack_token(),
        stripe_key(),
        jwt(),
        anthropic_key(),
        openai_key(),
        google_api_key(),
        npm_token(),
    ];
    for round in 0..2_000 {
        let secret = &secrets[round % secrets.len()];
        let line = format!(
            "{} {secret} {}",
            rng.printable_line(40),
            rng.printable_line(40)
        );
        let redacted = redactor.redact(&line);
        assert!(
            !redacted.text.contains(secret.as_str()),
            "{line:?} became {:?}",
            redacted.text
        );
        assert!(!redacted.kinds.is_empty());
    }
}

#[test]
fn query_parameters_end_at_the_next_parameter() {
    let redactor = Redactor::new();
    let value = random_value();
    let line = format!(
        "callback = 'https://app.example.com/cb#access_token={value}&state=xyz&token_type=Bearer'"
    );
    let redacted = redactor.redact(&line);
    assert_eq!(
        redacted.text,
        "callback = 'https://app.example.com/cb#access_token=[REDACTED:generic_secret]&state=xyz&token_type=Bearer'"
    );
    assert_eq!(redacted.kinds, [SecretKind::GenericSecret]);
    let compose = format!("      - \"POSTGRES_PASSWORD={value}\"");
    assert_eq!(
        redactor.redact(&compose).text,
        "      - \"POSTGRES_PASSWORD=[REDACTED:generic_secret]\""
    );
}

#[test]
fn type_annotations_are_skipped_to_reach_the_value() {
    let redactor = Redactor::new();
    let value = random_value();
    for (line, expected) in [
        (
            format!("API_TOKEN: str = \"{value}\""),
            "API_TOKEN: str = \"[REDACTED:generic_secret]\"",
        ),
        (
            format!("const AUTH_TOKEN: &'static str = \"{value}\";"),
            "const AUTH_TOKEN: &'static str = \"[REDACTED:generic_secret]\";",
        ),
    ] {
        assert_eq!(redactor.redact(&line).text, expected);
    }
}

#[test]
fn multi_line_redaction_agrees_with_line_by_line_on_random_text() {
    let redactor = Redactor::new();
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    let fragments = [
        "password = ",
        "token: ",
        "\"",
        "'",
        "://",
        "user:",
        "@host",
        "-----BEGIN ",
        "RSA PRIVATE KEY-----",
        "-----END ",
        "MIIEowIBAAKCAQEA",
        "eyJ",
        "AKIA",
        "é",
        "日本",
        "\\n",
        "&",
        "=",
        " ",
        "\t",
        "\r",
    ];
    for _ in 0..300 {
        let mut text = String::new();
        for _ in 0..rng.below(12) {
            match rng.below(4) {
                0 => text.push('\n'),
                1 => text.push_str(&rng.printable_line(20)),
                _ => text.push_str(fragments[rng.below(fragments.len() as u64) as usize]),
            }
        }
        let whole = redactor.redact(&text);
        let mut lines = redactor.line_redactor();
        let mut joined = Vec::new();
        let mut kinds = Vec::new();
        for line in text.split('\n') {
            let redacted = lines.redact_line(line);
            joined.push(redacted.text.into_owned());
            kinds.extend(redacted.kinds);
        }
        assert_eq!(whole.text, joined.join("\n"), "{text:?}");
        assert_eq!(whole.kinds, kinds, "{text:?}");
    }
}
