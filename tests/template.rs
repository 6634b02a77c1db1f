//! `template.yaml` against the callback registry: a function per registered callback built from
//! `functions/<name>`, the environment its needs imply, the edge's `KOOGALLERY_FN_*` variable and its
//! permission to invoke it, and no IAM action the registry does not justify. The template's
//! `Fn::ForEach` loops are expanded here the way CloudFormation's language extensions do.

use std::collections::BTreeSet;

use koogallery::{callbacks::REGISTRY, config::SecretPart};
use serde_json::{Map, Value, json};

/// Functions that are not callbacks.
const NOT_CALLBACKS: [&str; 10] = [
    "AdminFunction",
    "EdgeFunction",
    "LicenseApiFunction",
    "LicenseUsageFunction",
    "SsoFunction",
    "ProvisionWorkerFunction",
    "ReconcilerFunction",
    "UsageIngestFunction",
    "UsageQueueFunction",
    "UsagePushFunction",
];

fn load() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let text = std::fs::read_to_string(path).expect("template.yaml");
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("template parses");
    let mut template = to_json(yaml);
    let mappings = template.get("Mappings").cloned().unwrap_or(Value::Null);
    let resources = template["Resources"]
        .as_object()
        .expect("Resources")
        .clone();
    template["Resources"] = Value::Object(expand(resources, &mappings));
    template
}

/// YAML to JSON, with CloudFormation's short tags as their long forms (`!Ref x` → `{"Ref": x}`).
fn to_json(v: serde_yaml_ng::Value) -> Value {
    use serde_yaml_ng::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => serde_json::to_value(&n).unwrap_or(Value::Null),
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Y::Mapping(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        Y::String(s) => s,
                        other => serde_yaml_ng::to_string(&other).unwrap_or_default(),
                    };
                    (key.trim().to_owned(), to_json(v))
                })
                .collect(),
        ),
        Y::Tagged(t) => {
            let name = t.tag.to_string().trim_start_matches('!').to_owned();
            let inner = to_json(t.value);
            match (name.as_str(), inner) {
                ("Ref", v) => json!({ "Ref": v }),
                ("GetAtt", Value::String(s)) => match s.split_once('.') {
                    Some((res, attr)) => json!({ "Fn::GetAtt": [res, attr] }),
                    None => json!({ "Fn::GetAtt": s }),
                },
                (other, v) => json!({ format!("Fn::{other}"): v }),
            }
        }
    }
}

/// Expands every `Fn::ForEach::<Loop>` of `Resources`.
fn expand(resources: Map<String, Value>, mappings: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in resources {
        if !key.starts_with("Fn::ForEach::") {
            out.insert(key, value);
            continue;
        }
        let parts = value
            .as_array()
            .expect("ForEach takes [var, items, template]");
        let var = parts[0].as_str().expect("loop variable");
        let items = parts[1].as_array().expect("collection");
        let body = parts[2].as_object().expect("output template");
        for item in items {
            let item = item.as_str().expect("string items");
            for (k, v) in body {
                let name = k.replace(&format!("${{{var}}}"), item);
                out.insert(name, substitute(v, var, item, mappings));
            }
        }
    }
    out
}

fn substitute(v: &Value, var: &str, item: &str, mappings: &Value) -> Value {
    let placeholder = format!("${{{var}}}");
    match v {
        Value::Object(m) if m.len() == 1 && m.get("Ref") == Some(&Value::from(var)) => {
            Value::from(item)
        }
        Value::Object(m) if m.len() == 1 && m.contains_key("Fn::FindInMap") => {
            let args = substitute(&m["Fn::FindInMap"], var, item, mappings);
            let keys: Vec<&str> = args
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match keys.as_slice() {
                [map, key, attr] => mappings[map][key][attr].clone(),
                _ => json!({ "Fn::FindInMap": args }),
            }
        }
        Value::Object(m) if m.len() == 1 && m.contains_key("Fn::Sub") => {
            let (text, vars) = match &m["Fn::Sub"] {
                Value::String(s) => (s.clone(), Map::new()),
                Value::Array(a) => (
                    a[0].as_str().unwrap_or_default().to_owned(),
                    substitute(&a[1], var, item, mappings)
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                ),
                other => return json!({ "Fn::Sub": other }),
            };
            let mut text = text.replace(&placeholder, item);
            for (name, value) in &vars {
                if let Some(s) = value.as_str() {
                    text = text.replace(&format!("${{{name}}}"), s);
                }
            }
            if text.contains("${") {
                json!({ "Fn::Sub": text })
            } else {
                Value::from(text)
            }
        }
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), substitute(v, var, item, mappings)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|v| substitute(v, var, item, mappings))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn statements(role: &Value) -> Vec<Value> {
    role["Properties"]["Policies"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| {
            p["PolicyDocument"]["Statement"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

fn env_names(function: &Value) -> BTreeSet<String> {
    function["Properties"]["Environment"]["Variables"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// Every disagreement between the template and the registry, in words.
fn problems(template: &Value) -> Vec<String> {
    let resources = template["Resources"].as_object().expect("Resources");
    let edge = &resources["EdgeFunction"];
    let edge_env = &edge["Properties"]["Environment"]["Variables"];
    let invokable: Vec<Value> = statements(&resources["EdgeRole"])
        .into_iter()
        .filter(|s| strings(&s["Action"]).contains(&"lambda:InvokeFunction".to_owned()))
        .flat_map(|s| match &s["Resource"] {
            Value::Array(a) => a.clone(),
            other => vec![other.clone()],
        })
        .collect();
    let mut out = Vec::new();
    let mut registered = BTreeSet::new();

    for r in &REGISTRY {
        let prefix = r.resource_prefix();
        let (function_id, role_id) = (format!("{prefix}Function"), format!("{prefix}Role"));
        registered.insert(function_id.clone());
        let Some(function) = resources.get(&function_id) else {
            out.push(format!("{} has no {function_id}", r.function));
            continue;
        };
        let code_uri = &function["Properties"]["CodeUri"];
        if code_uri != &Value::from(format!("functions/{}", r.function)) {
            out.push(format!(
                "{function_id} is built from {code_uri}, not functions/{}",
                r.function
            ));
        }
        // A callback must end before the edge's dispatch deadline (4 s), which ends before the
        // edge's own timeout: KooGallery always gets the edge's signed answer.
        let timeout = function["Properties"]["Timeout"].as_u64();
        let deadline_ms = koogallery::config::EdgeSettings::default()
            .dispatch_deadline
            .as_millis();
        if timeout.is_none_or(|t| u128::from(t) * 1000 >= deadline_ms) {
            out.push(format!(
                "{function_id} times out at {timeout:?} s, not before the edge's dispatch deadline"
            ));
        }
        let env = env_names(function);
        for (var, needed) in [
            ("KOOGALLERY_QUEUE_URL", r.needs.queue),
            (SecretPart::CallbackKeys.env_var(), r.needs.keys),
            (
                "KOOGALLERY_CREDENTIALS_KEY_ID",
                r.needs.open_credentials || r.needs.client_secret,
            ),
            (SecretPart::KitRsa.env_var(), r.needs.client_secret),
        ] {
            if env.contains(var) != needed {
                out.push(format!(
                    "{function_id}: {var} set = {}, needed = {needed}",
                    !needed
                ));
            }
        }
        let expected_ref = json!({ "Ref": function_id });
        if edge_env.get(r.function_env_var()) != Some(&expected_ref) {
            out.push(format!(
                "the edge's {} does not name {function_id}",
                r.function_env_var()
            ));
        }
        if !invokable.contains(&json!({ "Fn::GetAtt": [function_id, "Arn"] })) {
            out.push(format!("the edge may not invoke {function_id}"));
        }

        let mut expected: BTreeSet<String> = ["logs:CreateLogStream", "logs:PutLogEvents"]
            .into_iter()
            .chain(
                koogallery_aws::dynamo::iam_actions(r.needs.store)
                    .iter()
                    .copied(),
            )
            .map(str::to_owned)
            .collect();
        if r.needs.queue {
            expected.insert("sqs:SendMessage".into());
        }
        if r.needs.keys {
            expected.insert("secretsmanager:GetSecretValue".into());
        }
        if r.needs.open_credentials {
            expected.insert("kms:Decrypt".into());
        }
        // applicationSync: reads the Kit RSA key, seals the client secret (a data key per value).
        if r.needs.client_secret {
            expected.insert("secretsmanager:GetSecretValue".into());
            expected.insert("kms:GenerateDataKey".into());
        }
        let Some(role) = resources.get(&role_id) else {
            out.push(format!("{function_id} has no {role_id}"));
            continue;
        };
        let role_ref = &function["Properties"]["Role"];
        if role_ref != &json!({ "Fn::GetAtt": [role_id, "Arn"] }) {
            out.push(format!(
                "{function_id} does not run as {role_id}: {role_ref}"
            ));
        }
        let mut granted = BTreeSet::new();
        for s in statements(role) {
            if strings(&s["Action"])
                .iter()
                .any(|a| a.starts_with("dynamodb:"))
            {
                let keys =
                    strings(&s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]);
                let expected = koogallery_aws::dynamo::leading_keys(r.needs.store);
                if keys != expected {
                    out.push(format!(
                        "{role_id} may touch partition keys {keys:?}, not exactly {expected:?}"
                    ));
                }
            }
            granted.extend(strings(&s["Action"]));
            if strings(&s["Resource"]).iter().any(|r| r.contains('*')) {
                out.push(format!("{role_id} grants on a wildcard resource"));
            }
        }
        if granted != expected {
            out.push(format!(
                "{role_id} grants {:?} beyond its needs and lacks {:?}",
                granted.difference(&expected).collect::<Vec<_>>(),
                expected.difference(&granted).collect::<Vec<_>>()
            ));
        }
    }

    for (id, resource) in resources {
        if resource["Type"] == "AWS::Serverless::Function"
            && !NOT_CALLBACKS.contains(&id.as_str())
            && !registered.contains(id)
        {
            out.push(format!(
                "{id} is in the template but no callback is registered for it"
            ));
        }
    }
    for (var, _) in edge_env.as_object().into_iter().flatten() {
        if var.starts_with("KOOGALLERY_FN_")
            && !REGISTRY.iter().any(|r| r.function_env_var() == *var)
        {
            out.push(format!("the edge's {var} names no registered callback"));
        }
    }
    for target in &invokable {
        let id = target["Fn::GetAtt"][0].as_str().unwrap_or_default();
        if !registered.contains(id) {
            out.push(format!(
                "the edge may invoke {id}, which is not a registered callback"
            ));
        }
    }
    out
}

#[test]
fn the_template_deploys_exactly_the_registered_callbacks() {
    let template = load();
    let found = problems(&template);
    assert!(
        found.is_empty(),
        "template.yaml disagrees with the registry:\n{}",
        found.join("\n")
    );
}

/// The check itself must catch drift: each change below is one a careless edit could make.
#[test]
fn drift_between_template_and_registry_is_reported() {
    let template = load();
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut t = template.clone();
        f(&mut t);
        problems(&t).join("\n")
    };
    let r = &mut |t: &mut Value| {
        t["Resources"]["EdgeFunction"]["Properties"]["Environment"]["Variables"]
            .as_object_mut()
            .unwrap()
            .remove("KOOGALLERY_FN_QUERY_INSTANCE");
    };
    assert!(broken(r).contains("KOOGALLERY_FN_QUERY_INSTANCE"));
    let r = &mut |t: &mut Value| {
        t["Resources"]
            .as_object_mut()
            .unwrap()
            .remove("ChangeInstanceCheckFunction");
    };
    assert!(broken(r).contains("change-instance-check has no ChangeInstanceCheckFunction"));
    let r = &mut |t: &mut Value| {
        t["Resources"]["ChangeInstanceCheckRole"]["Properties"]["Policies"][0]["PolicyDocument"]
            ["Statement"]
            .as_array_mut()
            .unwrap()
            .push(json!({"Effect":"Allow","Action":"dynamodb:DeleteItem","Resource":"x"}));
    };
    assert!(broken(r).contains("dynamodb:DeleteItem"));
    let r = &mut |t: &mut Value| {
        t["Resources"]["NewInstanceFunction"]["Properties"]["Environment"]["Variables"]
            .as_object_mut()
            .unwrap()
            .remove("KOOGALLERY_QUEUE_URL");
    };
    assert!(broken(r).contains("NewInstanceFunction: KOOGALLERY_QUEUE_URL"));
    let r = &mut |t: &mut Value| {
        t["Resources"]["QueryInstanceFunction"]["Properties"]["Timeout"] = json!(5);
    };
    assert!(broken(r).contains("QueryInstanceFunction times out"));
    let r = &mut |t: &mut Value| {
        t["Resources"]["ExtraFunction"] = json!({"Type": "AWS::Serverless::Function"});
    };
    assert!(broken(r).contains("ExtraFunction is in the template"));
    let r = &mut |t: &mut Value| {
        let statements = t["Resources"]["RefreshInstanceRole"]["Properties"]["Policies"][0]
            ["PolicyDocument"]["Statement"]
            .as_array_mut()
            .unwrap();
        for s in statements {
            if s["Sid"] == "Table" {
                s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"] = json!(["*"]);
            }
        }
    };
    assert!(broken(r).contains("RefreshInstanceRole may touch partition keys"));
}

/// The public route is throttled (a flood gets 429s that KooGallery retries,
/// not an overrun table) and the worker's event source runs a bounded number of invocations.
#[test]
fn the_production_url_is_throttled_and_the_worker_bounded() {
    let template = load();
    let api = &template["Resources"]["HttpApi"]["Properties"]["DefaultRouteSettings"];
    assert_eq!(
        api["ThrottlingRateLimit"],
        json!({"Ref": "ProduceRateLimit"})
    );
    assert_eq!(
        api["ThrottlingBurstLimit"],
        json!({"Ref": "ProduceBurstLimit"})
    );
    let jobs = &template["Resources"]["ProvisionWorkerFunction"]["Properties"]["Events"]["Jobs"];
    assert_eq!(
        jobs["Properties"]["ScalingConfig"]["MaximumConcurrency"],
        json!({"Ref": "WorkerMaximumConcurrency"})
    );
    for (name, min) in [
        ("ProduceRateLimit", 1),
        ("ProduceBurstLimit", 1),
        ("WorkerMaximumConcurrency", 2),
    ] {
        let p = &template["Parameters"][name];
        assert!(
            p["Default"].as_u64().is_some_and(|d| d >= min),
            "{name}: {p}"
        );
    }
}

/// A function's environment as it starts with the template's parameters at their defaults, or
/// at `overrides`: each `!Ref` to a parameter resolved, other references as placeholders.
fn resolved_env(
    template: &Value,
    function: &str,
    overrides: &[(&str, u64)],
) -> Vec<(String, String)> {
    let params = &template["Parameters"];
    template["Resources"][function]["Properties"]["Environment"]["Variables"]
        .as_object()
        .expect("variables")
        .iter()
        .map(|(name, value)| {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Object(m) => match m.get("Ref").and_then(Value::as_str) {
                    Some(p) if params.get(p).is_some() => {
                        match overrides.iter().find(|(o, _)| *o == p) {
                            Some((_, v)) => v.to_string(),
                            None => match &params[p]["Default"] {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            },
                        }
                    }
                    _ => format!("https://placeholder.example/{name}"),
                },
                other => other.to_string(),
            };
            (name.clone(), text)
        })
        .collect()
}

/// What the worker reads at start-up from the template's environment, with its AK/SK.
fn worker_settings(
    template: &Value,
    overrides: &[(&str, u64)],
) -> Result<koogallery::config::Settings, koogallery::config::ConfigError> {
    let vars = resolved_env(template, "ProvisionWorkerFunction", overrides);
    let lookup = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    koogallery::config::Settings::read(&koogallery::config::Env::from_fn(lookup), WORKER_ON_AWS)
}

/// The worker holds the open API's AK/SK and may not run offline unless told to.
const WORKER_ON_AWS: koogallery::config::OpenApiAccess = koogallery::config::OpenApiAccess {
    held: true,
    offline_by_default: false,
};

/// The worker's timeout covers a delivery's webhook calls (the worker checks its
/// webhook timeout against `KOOGALLERY_WORKER_TIMEOUT_SECS`, which must be the function's own), the
/// queue's visibility timeout is 6x the function's, and the queue keeps a job longer than either
/// deadline lets it retry.
#[test]
fn the_worker_timeout_covers_its_calls_and_the_queue_outlives_the_deadlines() {
    let template = load();
    let worker = &template["Resources"]["ProvisionWorkerFunction"]["Properties"];
    let timeout = worker["Timeout"].as_u64().unwrap();
    let env = &worker["Environment"]["Variables"];
    assert_eq!(
        env["KOOGALLERY_WORKER_TIMEOUT_SECS"].as_u64(),
        Some(timeout),
        "the worker must know its own timeout"
    );
    // What the worker reads at start-up with the webhook provisioner at its default timeout, and
    // the open API (both hosts) at its default: every call of a delivery fits.
    let vars = [
        ("KOOGALLERY_PROVISIONER", "webhook".to_owned()),
        (
            "KOOGALLERY_WEBHOOK_URL",
            "https://vendor.example/hook".to_owned(),
        ),
        ("KOOGALLERY_WORKER_TIMEOUT_SECS", timeout.to_string()),
    ];
    let lookup = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    };
    let env_vars = koogallery::config::Env::from_fn(lookup);
    koogallery::config::Settings::read(&env_vars, WORKER_ON_AWS).expect(
        "the webhook (default timeout) and Query Order (open API at its defaults) calls of a delivery fit the worker's timeout",
    );
    let queue = &template["Resources"]["JobsQueue"]["Properties"];
    assert!(queue["VisibilityTimeout"].as_u64().unwrap() >= 6 * timeout);
    assert!(env.get("KOOGALLERY_WORKER_MAX_ATTEMPTS").is_none());
}

/// Every way the jobs queue's limits and the worker's deadlines disagree, in words: the worker
/// is told the queue's own maxReceiveCount and retention (and refuses to start when its deadlines,
/// at its backoff, could outlive them), and the reconciler waits for the worker's longest backoff.
fn queue_limit_problems(template: &Value) -> Vec<String> {
    let r = &template["Resources"];
    let p = &template["Parameters"];
    let mut out = Vec::new();
    let env = |function: &str, var: &str| {
        r[function]["Properties"]["Environment"]["Variables"][var].clone()
    };
    let queue = &r["JobsQueue"]["Properties"];
    if queue["RedrivePolicy"]["maxReceiveCount"] != json!({"Ref": "MaxReceiveCount"})
        || env(
            "ProvisionWorkerFunction",
            "KOOGALLERY_JOBS_MAX_RECEIVE_COUNT",
        ) != json!({"Ref": "MaxReceiveCount"})
    {
        out.push(
            "the worker is not told the jobs queue's maxReceiveCount (MaxReceiveCount)".into(),
        );
    }
    let retention = queue["MessageRetentionPeriod"].as_u64().unwrap_or_default();
    if env("ProvisionWorkerFunction", "KOOGALLERY_JOBS_RETENTION_SECS").as_u64() != Some(retention)
    {
        out.push(format!(
            "the worker is not told the jobs queue's retention ({retention} s)"
        ));
    }
    let backoff = json!({"Ref": "WorkerBackoffMaxSecs"});
    for function in ["ProvisionWorkerFunction", "ReconcilerFunction"] {
        if env(function, "KOOGALLERY_WORKER_BACKOFF_MAX_SECS") != backoff {
            out.push(format!(
                "{function} does not take KOOGALLERY_WORKER_BACKOFF_MAX_SECS from WorkerBackoffMaxSecs"
            ));
        }
    }
    // The parameters at their defaults: the worker starts, and the arithmetic holds on its own
    // terms too: every receive but the last waits at least half the backoff cap, so the receives
    // span at least (maxReceiveCount - 1) x cap / 2, which must cover both deadlines, and the
    // retention must exceed them.
    let default = |name: &str| p[name]["Default"].as_u64().unwrap_or_default();
    match worker_settings(template, &[]) {
        Ok(settings) => {
            let limits = settings.worker.queue_limits;
            if limits.map(|l| (u64::from(l.max_receive_count), l.retention.as_secs()))
                != Some((default("MaxReceiveCount"), retention))
            {
                out.push(format!("the worker reads other queue limits: {limits:?}"));
            }
        }
        Err(e) => out.push(format!("the worker refuses the defaults: {e}")),
    }
    let deadlines = default("ProvisioningDeadlineSecs") + default("NoticeDeadlineSecs");
    if default("MaxReceiveCount").saturating_sub(1) * default("WorkerBackoffMaxSecs") / 2
        < deadlines
    {
        out.push(format!(
            "MaxReceiveCount x WorkerBackoffMaxSecs / 2 does not cover the deadlines ({deadlines} s)"
        ));
    }
    if retention <= deadlines {
        out.push(format!(
            "the jobs queue keeps a job {retention} s, less than its deadlines ({deadlines} s)"
        ));
    }
    // The deadlines at their largest allowed values can be made to fit: some allowed backoff
    // cap does (the worker names the least one when it refuses).
    let max = |name: &str| p[name]["MaxValue"].as_u64().unwrap_or_default();
    let at_most = [
        ("ProvisioningDeadlineSecs", max("ProvisioningDeadlineSecs")),
        ("NoticeDeadlineSecs", max("NoticeDeadlineSecs")),
        ("MaxReceiveCount", max("MaxReceiveCount")),
    ];
    let fits = |cap: u64| {
        let mut o = at_most.to_vec();
        o.push(("WorkerBackoffMaxSecs", cap));
        worker_settings(template, &o).is_ok()
    };
    let (low, high) = (
        p["WorkerBackoffMaxSecs"]["MinValue"]
            .as_u64()
            .unwrap_or_default(),
        max("WorkerBackoffMaxSecs"),
    );
    if !(low..=high).step_by(60).any(fits) {
        out.push("no allowed WorkerBackoffMaxSecs fits the largest deadlines".into());
    }
    out
}

/// The jobs queue's maxReceiveCount and retention outlast the deadlines.
#[test]
fn the_jobs_queue_limits_outlast_the_deadlines_and_the_worker_checks_them() {
    let template = load();
    let found = queue_limit_problems(&template);
    assert!(found.is_empty(), "{}", found.join("\n"));
    // The worker itself refuses what does not fit, naming the settings: the earlier 300 s cap
    // (48 h of notice retries then take over 1000 receives), or the smallest MaxReceiveCount.
    for overrides in [
        vec![("WorkerBackoffMaxSecs", 300)],
        vec![("MaxReceiveCount", 100)],
    ] {
        let e = worker_settings(&template, &overrides)
            .err()
            .unwrap_or_else(|| panic!("{overrides:?} accepted"))
            .to_string();
        assert!(
            e.contains("KOOGALLERY_JOBS_MAX_RECEIVE_COUNT") && e.contains("MaxReceiveCount"),
            "{e}"
        );
    }
}

/// Each check of [`queue_limit_problems`] catches the edit that would break it.
#[test]
fn queue_limit_drift_is_reported() {
    let template = load();
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut t = template.clone();
        f(&mut t);
        queue_limit_problems(&t).join("\n")
    };
    let vars = |t: &mut Value, function: &str| {
        t["Resources"][function]["Properties"]["Environment"]["Variables"]
            .as_object_mut()
            .unwrap()
            .clone()
    };
    let set = |t: &mut Value, function: &str, var: &str, v: Value| {
        let mut m = vars(t, function);
        m.insert(var.to_owned(), v);
        t["Resources"][function]["Properties"]["Environment"]["Variables"] = Value::Object(m);
    };
    let r = |t: &mut Value| {
        t["Resources"]["JobsQueue"]["Properties"]["MessageRetentionPeriod"] = json!(345_600);
    };
    assert!(broken(&r).contains("retention"));
    let r = |t: &mut Value| {
        t["Resources"]["JobsQueue"]["Properties"]["MessageRetentionPeriod"] = json!(172_800);
        set(
            t,
            "ProvisionWorkerFunction",
            "KOOGALLERY_JOBS_RETENTION_SECS",
            json!(172_800),
        );
    };
    assert!(broken(&r).contains("keeps a job 172800 s"));
    let r = |t: &mut Value| {
        t["Parameters"]["WorkerBackoffMaxSecs"]["Default"] = json!(300);
    };
    let found = broken(&r);
    assert!(found.contains("refuses the defaults"), "{found}");
    assert!(found.contains("does not cover the deadlines"), "{found}");
    let r = |t: &mut Value| {
        set(
            t,
            "ReconcilerFunction",
            "KOOGALLERY_WORKER_BACKOFF_MAX_SECS",
            json!(300),
        );
    };
    assert!(broken(&r).contains("ReconcilerFunction does not take"));
    let r = |t: &mut Value| {
        set(
            t,
            "ProvisionWorkerFunction",
            "KOOGALLERY_JOBS_MAX_RECEIVE_COUNT",
            json!(1000),
        );
    };
    assert!(broken(&r).contains("maxReceiveCount (MaxReceiveCount)"));
    let r = |t: &mut Value| {
        t["Parameters"]["WorkerBackoffMaxSecs"]["MaxValue"] = json!(600);
    };
    assert!(broken(&r).contains("no allowed WorkerBackoffMaxSecs"));
}

/// Each function may touch only its own partition keys (the edge its nonces,
/// the worker instances, the reconciler only the sparse index), concurrency can be reserved, the
/// reconciler runs on a schedule, and every alarm watches a metric the code writes.
#[test]
fn keys_are_partitioned_per_function_and_the_reconciler_is_scheduled_and_alarmed() {
    let template = load();
    let r = &template["Resources"];
    let keys_of = |role: &str| -> Vec<Vec<String>> {
        statements(&r[role])
            .into_iter()
            .filter(|s| {
                strings(&s["Action"])
                    .iter()
                    .any(|a| a.starts_with("dynamodb:"))
            })
            .map(|s| strings(&s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]))
            .collect()
    };
    assert_eq!(
        keys_of("EdgeRole"),
        [
            vec!["NONCE#*"],
            koogallery_aws::dynamo::EXCHANGE_LOG_LEADING_KEYS.to_vec()
        ]
    );
    // The worker also delivers the Kit syncs' directory events and the license codes' events.
    assert_eq!(
        keys_of("ProvisionWorkerRole"),
        [
            vec!["INSTANCE#*", "ORDERNOTICE#*"],
            vec!["DIR#*"],
            vec!["LICENSE#*"],
            koogallery_aws::dynamo::EXCHANGE_LOG_LEADING_KEYS.to_vec()
        ]
    );
    // Passwords at rest: the worker seals (a data key per password), queryInstance and newInstance
    // (a V1 answer's appInfo) open; the key outlives the stack with the table.
    let kms_of = |role: &str| -> Vec<String> {
        statements(&r[role])
            .into_iter()
            .flat_map(|s| strings(&s["Action"]))
            .filter(|a| a.starts_with("kms:"))
            .collect()
    };
    assert_eq!(kms_of("ProvisionWorkerRole"), ["kms:GenerateDataKey"]);
    assert_eq!(kms_of("QueryInstanceRole"), ["kms:Decrypt"]);
    assert_eq!(kms_of("NewInstanceRole"), ["kms:Decrypt"]);
    assert!(kms_of("EdgeRole").is_empty() && kms_of("RefreshInstanceRole").is_empty());
    assert_eq!(r["CredentialsKey"]["DeletionPolicy"], "Retain");
    assert_eq!(r["CredentialsKey"]["Properties"]["EnableKeyRotation"], true);
    assert_eq!(
        r["ProvisionWorkerFunction"]["Properties"]["Environment"]["Variables"]["KOOGALLERY_CREDENTIALS_KEY_ID"],
        json!({"Ref": "CredentialsKey"})
    );
    // The reconciler queries the unsettled index's shards (and the legacy index), then reads the
    // instances it names, and keeps each pass in the exchange log: nothing else, and no other
    // write.
    use koogallery_aws::dynamo::keys::{
        LEGACY_UNSETTLED, LEGACY_UNSETTLED_INDEX, UNSETTLED_INDEX, UNSETTLED_SHARD,
    };
    let reconciler: Vec<Value> = statements(&r["ReconcilerRole"]);
    let table_access: Vec<(Vec<String>, Value, Vec<String>)> = reconciler
        .iter()
        .filter(|s| {
            strings(&s["Action"])
                .iter()
                .any(|a| a.starts_with("dynamodb:"))
        })
        .map(|s| {
            (
                strings(&s["Action"]),
                s["Resource"].clone(),
                strings(&s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]),
            )
        })
        .collect();
    let index = |name: &str| json!({"Fn::Sub": format!("${{Table.Arn}}/index/{name}")});
    assert_eq!(
        table_access,
        [
            (
                vec!["dynamodb:Query".to_owned()],
                json!([index(UNSETTLED_INDEX), index(LEGACY_UNSETTLED_INDEX)]),
                vec![]
            ),
            (
                vec!["dynamodb:BatchGetItem".to_owned()],
                json!({"Fn::GetAtt": ["Table", "Arn"]}),
                vec!["INSTANCE#*".to_owned()]
            ),
            (
                vec!["dynamodb:PutItem".to_owned()],
                json!({"Fn::GetAtt": ["Table", "Arn"]}),
                vec!["XLOG#*".to_owned()]
            ),
        ]
    );
    // The sparse index is spread over shards and projects keys only; the legacy one stays
    // as it was (an update may not change an index, nor add one and remove another).
    let gsis = r["Table"]["Properties"]["GlobalSecondaryIndexes"]
        .as_array()
        .unwrap();
    let gsi = |name: &str| {
        gsis.iter()
            .find(|g| g["IndexName"] == name)
            .unwrap_or_else(|| panic!("no index {name}"))
    };
    let sharded = gsi(UNSETTLED_INDEX);
    assert_eq!(sharded["KeySchema"][0]["AttributeName"], UNSETTLED_SHARD);
    assert_eq!(sharded["KeySchema"].as_array().unwrap().len(), 1);
    assert_eq!(sharded["Projection"]["ProjectionType"], "KEYS_ONLY");
    let legacy = gsi(LEGACY_UNSETTLED_INDEX);
    assert_eq!(legacy["KeySchema"][0]["AttributeName"], LEGACY_UNSETTLED);
    assert_eq!(legacy["Projection"]["ProjectionType"], "ALL");
    let attributes: Vec<&Value> = r["Table"]["Properties"]["AttributeDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["AttributeName"])
        .collect();
    assert!(attributes.contains(&&json!(UNSETTLED_SHARD)));
    let schedule = &r["ReconcilerFunction"]["Properties"]["Events"]["EveryFiveMinutes"];
    assert_eq!(schedule["Type"], "ScheduleV2");
    assert_eq!(
        schedule["Properties"]["ScheduleExpression"],
        "rate(5 minutes)"
    );
    assert!(
        r["EdgeFunction"]["Properties"]["ReservedConcurrentExecutions"]["Fn::If"][0]
            == "ReservesEdge"
    );
    assert!(
        r["QueryInstanceFunction"]["Properties"]["ReservedConcurrentExecutions"]["Fn::If"][0]
            == "ReservesCallbacks"
    );

    // Every custom-metric alarm watches a name and dimensions that the code writes.
    let written: Vec<Value> = [
        koogallery::metrics::Metric::Callback {
            family: "v2-basic",
            activity: "newInstance",
            result_code: koogallery::ResultCode::InternalError,
        },
        koogallery::metrics::Metric::Callback {
            family: "kit",
            activity: "tenantSync",
            result_code: koogallery::ResultCode::InternalError,
        },
        koogallery::metrics::Metric::Callback {
            family: "kit",
            activity: "applicationSync",
            result_code: koogallery::ResultCode::MobileConflict,
        },
        koogallery::metrics::Metric::ProvisionerMisconfigured,
        koogallery::metrics::Metric::ProvisioningDeadlinePassed,
        koogallery::metrics::Metric::NoticeDeadlinePassed,
        koogallery::metrics::Metric::Reconciled {
            stuck_provisioning: 1,
            undelivered_notices: 1,
            parked_outboxes: 1,
        },
        koogallery::metrics::Metric::UsagePass {
            accepted: 1,
            rejected: 1,
            deferred: 1,
            near_horizon: 1,
        },
        koogallery::metrics::Metric::UsageRejected,
        koogallery::metrics::Metric::UsageBatchRefused,
        koogallery::metrics::Metric::UsagePushFailed,
        koogallery::metrics::Metric::UsagePushMisconfigured,
        koogallery::metrics::Metric::UsagePushSystemicRefusal,
        koogallery::metrics::Metric::SsoAuthCentreFailure,
        koogallery::metrics::Metric::LicenseActivationFailure,
        koogallery::metrics::Metric::LicenseUsagePushFailure,
    ]
    .iter()
    .map(|m| serde_json::from_str(&koogallery::metrics::emf_line("N", m, 0)).unwrap())
    .collect();
    let mut custom = 0;
    for (id, alarm) in r.as_object().unwrap() {
        if alarm["Type"] != "AWS::CloudWatch::Alarm" {
            continue;
        }
        let p = &alarm["Properties"];
        if p["Namespace"] != json!({"Fn::Sub": "KooGallery/${AWS::StackName}"}) {
            continue;
        }
        custom += 1;
        let name = p["MetricName"].as_str().unwrap();
        let dims: Vec<(String, String)> = p["Dimensions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["Name"].as_str().unwrap().to_owned(),
                    d["Value"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let matched = written.iter().any(|line| {
            line.get(name).is_some()
                && line["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|set| {
                        let set = strings(set);
                        set.len() == dims.len()
                            && dims
                                .iter()
                                .all(|(k, v)| set.contains(k) && line[k] == *v.as_str())
                    })
        });
        assert!(
            matched,
            "{id} watches {name} {dims:?}, which no metric line carries"
        );
    }
    assert_eq!(custom, 17);
    let namespace = &template["Globals"]["Function"]["Environment"]["Variables"]["KOOGALLERY_METRICS_NAMESPACE"];
    assert_eq!(
        namespace,
        &json!({"Fn::Sub": "KooGallery/${AWS::StackName}"})
    );
}

/// Every way the template's pay-per-use usage differs from what the usage functions
/// need, in words: the `POST /usage` route, the usage queue and its redrive to the usage DLQ, the
/// push schedule, the alarms on the metering metrics and on the DLQ, and roles no wider than the
/// functions' table access (the usage items' partitions from `koogallery_aws::usage::keys`).
fn usage_problems(template: &Value) -> Vec<String> {
    use koogallery_aws::usage::keys::{DUE_INDEX, LEADING_KEYS, USAGE_PK_PREFIX};
    let r = &template["Resources"];
    let mut out = Vec::new();
    let mut expect = |what: &str, ok: bool| {
        if !ok {
            out.push(what.to_owned());
        }
    };
    let events = |function: &str| -> Vec<Value> {
        r[function]["Properties"]["Events"]
            .as_object()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    };
    let env = |function: &str, var: &str| {
        r[function]["Properties"]["Environment"]["Variables"][var].clone()
    };

    // POST /usage on the HTTP API, and only the ingest function serves it.
    let ingest = &r["UsageIngestFunction"]["Properties"];
    expect(
        "UsageIngestFunction is not built from functions/usage-ingest",
        ingest["CodeUri"] == "functions/usage-ingest",
    );
    expect(
        "no route POST /usage to UsageIngestFunction on the HTTP API",
        events("UsageIngestFunction").iter().any(|e| {
            e["Type"] == "HttpApi"
                && e["Properties"]["ApiId"] == json!({"Ref": "HttpApi"})
                && e["Properties"]["Method"] == "POST"
                && e["Properties"]["Path"] == "/usage"
                && e["Properties"]["PayloadFormatVersion"] == "2.0"
        }),
    );
    expect(
        "no route GET /usage/estimate to UsageIngestFunction, or no KOOGALLERY_PRICING",
        events("UsageIngestFunction").iter().any(|e| {
            e["Type"] == "HttpApi"
                && e["Properties"]["Method"] == "GET"
                && e["Properties"]["Path"] == "/usage/estimate"
        }) && env("UsageIngestFunction", "KOOGALLERY_PRICING") == json!({"Ref": "UsagePricing"}),
    );
    expect(
        "UsageIngestFunction reads no usage key (KOOGALLERY_USAGE_KEY_SECRET_ID)",
        env("UsageIngestFunction", SecretPart::Usage.env_var()) == json!({"Ref": "UsageKeySecret"}),
    );
    for function in ["UsageIngestFunction", "UsageQueueFunction"] {
        expect(
            &format!("{function} has no KOOGALLERY_PACKAGE_QUOTAS"),
            env(function, "KOOGALLERY_PACKAGE_QUOTAS") == json!({"Ref": "PackageQuotas"}),
        );
    }

    // The usage queue: redrive to its DLQ, the event source with partial batch failures, the
    // explicit dead-lettering of refused batches.
    let queue = &r["UsageQueue"]["Properties"];
    expect(
        "UsageQueue does not redrive to UsageDeadLetterQueue",
        queue["RedrivePolicy"]["deadLetterTargetArn"]
            == json!({"Fn::GetAtt": ["UsageDeadLetterQueue", "Arn"]})
            && queue["RedrivePolicy"]["maxReceiveCount"] == json!({"Ref": "UsageMaxReceiveCount"}),
    );
    let timeout = r["UsageQueueFunction"]["Properties"]["Timeout"]
        .as_u64()
        .unwrap_or(u64::MAX);
    expect(
        "UsageQueue's visibility timeout is under 6x the usage-queue function's",
        queue["VisibilityTimeout"]
            .as_u64()
            .is_some_and(|v| v >= 6 * timeout),
    );
    expect(
        "UsageQueueFunction does not consume UsageQueue with ReportBatchItemFailures",
        events("UsageQueueFunction").iter().any(|e| {
            e["Type"] == "SQS"
                && e["Properties"]["Queue"] == json!({"Fn::GetAtt": ["UsageQueue", "Arn"]})
                && strings(&e["Properties"]["FunctionResponseTypes"])
                    .contains(&"ReportBatchItemFailures".to_owned())
        }),
    );
    expect(
        "UsageQueueFunction does not name its queues",
        env("UsageQueueFunction", "KOOGALLERY_USAGE_QUEUE_URL") == json!({"Ref": "UsageQueue"})
            && env("UsageQueueFunction", "KOOGALLERY_USAGE_DLQ_URL")
                == json!({"Ref": "UsageDeadLetterQueue"}),
    );
    expect(
        "UsageDeadLetterQueue keeps refused usage less than 14 days",
        r["UsageDeadLetterQueue"]["Properties"]["MessageRetentionPeriod"] == 1_209_600,
    );

    // The push: on its schedule, ending before the next pass starts.
    expect(
        "UsagePushFunction is not scheduled by UsagePushSchedule",
        events("UsagePushFunction").iter().any(|e| {
            e["Type"] == "ScheduleV2"
                && e["Properties"]["ScheduleExpression"] == json!({"Ref": "UsagePushSchedule"})
        }),
    );
    expect(
        "UsagePushSchedule does not default to every minute",
        template["Parameters"]["UsagePushSchedule"]["Default"] == "rate(1 minute)",
    );
    expect(
        "UsagePushFunction may outlive a one-minute schedule",
        r["UsagePushFunction"]["Properties"]["Timeout"]
            .as_u64()
            .is_some_and(|t| t < 60),
    );

    // The alarms.
    let alarms: Vec<&Value> = r
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| v["Type"] == "AWS::CloudWatch::Alarm")
        .map(|(_, v)| &v["Properties"])
        .collect();
    for metric in [
        "UsagePushMisconfigured",
        "UsageNearHorizon",
        "UsagePushFailures",
        "UsageRecordsRejected",
        "UsageBatchesRefused",
        "UsagePushSystemicRefusals",
    ] {
        expect(
            &format!("no alarm on {metric} (Component=metering)"),
            alarms.iter().any(|a| {
                a["MetricName"] == metric
                    && a["Namespace"] == json!({"Fn::Sub": "KooGallery/${AWS::StackName}"})
                    && a["Dimensions"] == json!([{"Name": "Component", "Value": "metering"}])
            }),
        );
    }
    expect(
        "no alarm on the usage dead-letter queue's depth",
        alarms.iter().any(|a| {
            a["Namespace"] == "AWS/SQS"
                && a["MetricName"] == "ApproximateNumberOfMessagesVisible"
                && a["Dimensions"][0]["Value"]
                    == json!({"Fn::GetAtt": ["UsageDeadLetterQueue", "QueueName"]})
        }),
    );
    expect(
        "no alarm on the usage push function's errors",
        alarms.iter().any(|a| {
            a["Namespace"] == "AWS/Lambda"
                && a["MetricName"] == "Errors"
                && a["Dimensions"][0]["Value"] == json!({"Ref": "UsagePushFunction"})
        }),
    );

    // Least privilege: each role's table actions and partitions, and nothing on a wildcard.
    let usage_keys: Vec<String> = LEADING_KEYS.iter().map(|k| (*k).to_owned()).collect();
    let with = |first: &[&str]| -> Vec<String> {
        first
            .iter()
            .map(|k| (*k).to_owned())
            .chain(usage_keys.iter().cloned())
            .collect()
    };
    // Ingestion (a total built from an instance's windows by Query on a table from before
    // totals), and estimates (the same Query).
    let ingest_actions = [
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
    ];
    // The push reads the due windows, and a package window's siblings in its partition.
    let push = [
        "dynamodb:BatchGetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
    ];
    let owned = |v: &[&str]| -> Vec<String> { v.iter().map(|k| (*k).to_owned()).collect() };
    // Each role's table statements: (actions, partition keys). The push only reads instances (the
    // release times of released ones); it writes its own windows only.
    for (function, role, expected) in [
        (
            "UsageIngestFunction",
            "UsageIngestRole",
            vec![(owned(&ingest_actions), with(&["NONCE#*", "INSTANCE#*"]))],
        ),
        (
            "UsageQueueFunction",
            "UsageQueueRole",
            vec![(owned(&ingest_actions), with(&["INSTANCE#*"]))],
        ),
        (
            "UsagePushFunction",
            "UsagePushRole",
            vec![
                (owned(&push), vec![format!("{USAGE_PK_PREFIX}*")]),
                (owned(&["dynamodb:BatchGetItem"]), owned(&["INSTANCE#*"])),
                (
                    owned(koogallery_aws::dynamo::EXCHANGE_LOG_ACTIONS),
                    owned(koogallery_aws::dynamo::EXCHANGE_LOG_LEADING_KEYS),
                ),
            ],
        ),
    ] {
        expect(
            &format!("{function} does not run as {role}"),
            r[function]["Properties"]["Role"] == json!({"Fn::GetAtt": [role, "Arn"]}),
        );
        let statements = statements(&r[role]);
        let table: Vec<(Vec<String>, Vec<String>)> = statements
            .iter()
            .filter(|s| s["Resource"] == json!({"Fn::GetAtt": ["Table", "Arn"]}))
            .map(|s| {
                (
                    strings(&s["Action"]),
                    strings(&s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]),
                )
            })
            .collect();
        expect(
            &format!("{role} may do other than {expected:?} on the table"),
            table == expected,
        );
        for s in &statements {
            expect(
                &format!("{role} grants on a wildcard resource"),
                !strings(&s["Resource"]).iter().any(|x| x.contains('*')),
            );
            let index = strings(&s["Resource"])
                .iter()
                .any(|x| x.contains("/index/"));
            expect(
                &format!("{role} reads an index it has no use for"),
                !index || role == "UsagePushRole",
            );
        }
    }
    let due: Vec<Value> = statements(&r["UsagePushRole"])
        .into_iter()
        .filter(|s| {
            s["Resource"] == json!({"Fn::Sub": format!("${{Table.Arn}}/index/{DUE_INDEX}")})
        })
        .collect();
    expect(
        "UsagePushRole may not query the due index (only)",
        due.len() == 1 && strings(&due[0]["Action"]) == ["dynamodb:Query"],
    );
    // Ingestion queues a used-up package's notice on the jobs queue (the worker delivers it at
    // once); the usage queue's function also dead-letters refused batches. Nothing else is sent.
    let jobs = json!({"Fn::GetAtt": ["JobsQueue", "Arn"]});
    let usage_dlq = json!({"Fn::GetAtt": ["UsageDeadLetterQueue", "Arn"]});
    for (function, role, targets) in [
        ("UsageIngestFunction", "UsageIngestRole", vec![jobs.clone()]),
        (
            "UsageQueueFunction",
            "UsageQueueRole",
            vec![usage_dlq, jobs],
        ),
    ] {
        let mut sends: Vec<Value> = statements(&r[role])
            .into_iter()
            .filter(|s| strings(&s["Action"]).contains(&"sqs:SendMessage".to_owned()))
            .map(|s| s["Resource"].clone())
            .collect();
        sends.sort_by_key(Value::to_string);
        let mut targets = targets;
        targets.sort_by_key(Value::to_string);
        expect(
            &format!("{role} may send elsewhere than {targets:?}, or not there"),
            sends == targets,
        );
        expect(
            &format!("{function} does not name the jobs queue (KOOGALLERY_QUEUE_URL)"),
            env(function, "KOOGALLERY_QUEUE_URL") == json!({"Ref": "JobsQueue"}),
        );
    }
    out
}

#[test]
fn usage_is_routed_queued_scheduled_alarmed_and_least_privileged() {
    let found = usage_problems(&load());
    assert!(
        found.is_empty(),
        "template.yaml, usage:\n{}",
        found.join("\n")
    );
}

/// Each check of [`usage_problems`] catches the edit that would break it.
#[test]
fn usage_drift_is_reported() {
    let template = load();
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut t = template.clone();
        f(&mut t);
        usage_problems(&t).join("\n")
    };
    let remove = |id: &'static str| {
        move |t: &mut Value| {
            t["Resources"].as_object_mut().unwrap().remove(id);
        }
    };
    for (alarm, metric) in [
        ("UsagePushMisconfiguredAlarm", "UsagePushMisconfigured"),
        ("UsageNearHorizonAlarm", "UsageNearHorizon"),
        ("UsagePushFailuresAlarm", "UsagePushFailures"),
        ("UsageRecordsRejectedAlarm", "UsageRecordsRejected"),
        ("UsageBatchesRefusedAlarm", "UsageBatchesRefused"),
        (
            "UsagePushSystemicRefusalsAlarm",
            "UsagePushSystemicRefusals",
        ),
    ] {
        assert!(
            broken(&remove(alarm)).contains(&format!("no alarm on {metric}")),
            "{alarm}"
        );
    }
    assert!(broken(&remove("UsageDeadLetterQueueAlarm")).contains("dead-letter queue's depth"));
    assert!(broken(&remove("UsagePushErrorsAlarm")).contains("usage push function's errors"));
    let r = &|t: &mut Value| {
        t["Resources"]["UsageQueue"]["Properties"]
            .as_object_mut()
            .unwrap()
            .remove("RedrivePolicy");
    };
    assert!(broken(r).contains("does not redrive"));
    let r = &|t: &mut Value| {
        t["Resources"]["UsageQueueFunction"]["Properties"]["Events"]["Usage"]["Properties"]["FunctionResponseTypes"] =
            json!([]);
    };
    assert!(broken(r).contains("ReportBatchItemFailures"));
    let r = &|t: &mut Value| {
        t["Resources"]["UsagePushFunction"]["Properties"]
            .as_object_mut()
            .unwrap()
            .remove("Events");
    };
    assert!(broken(r).contains("not scheduled"));
    let r = &|t: &mut Value| {
        t["Resources"]["UsageIngestFunction"]["Properties"]["Events"]["Usage"]["Properties"]["Path"] =
            json!("/usage/{proxy+}");
    };
    assert!(broken(r).contains("no route POST /usage"));
    let r = &|t: &mut Value| {
        t["Resources"]["UsageIngestFunction"]["Properties"]["Events"]
            .as_object_mut()
            .unwrap()
            .remove("UsageEstimate");
    };
    assert!(broken(r).contains("no route GET /usage/estimate"));
    let r = &|t: &mut Value| {
        for s in t["Resources"]["UsagePushRole"]["Properties"]["Policies"][0]["PolicyDocument"]
            ["Statement"]
            .as_array_mut()
            .unwrap()
        {
            if s["Sid"] == "Table" {
                s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"] =
                    json!(["USAGE#*", "INSTANCE#*", "ORDERLINE#*"]);
            }
        }
    };
    assert!(broken(r).contains("UsagePushRole may do other than"));
    let r = &|t: &mut Value| {
        for s in t["Resources"]["UsagePushRole"]["Properties"]["Policies"][0]["PolicyDocument"]
            ["Statement"]
            .as_array_mut()
            .unwrap()
        {
            if s["Sid"] == "ReadInstances" {
                s["Action"] = json!(["dynamodb:BatchGetItem", "dynamodb:PutItem"]);
            }
        }
    };
    assert!(broken(r).contains("UsagePushRole may do other than"));
    let r = &|t: &mut Value| {
        t["Resources"]["UsageQueueRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
            .as_array_mut()
            .unwrap()
            .push(json!({"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}));
    };
    let found = broken(r);
    assert!(
        found.contains("UsageQueueRole grants on a wildcard resource"),
        "{found}"
    );
    assert!(found.contains("may send elsewhere"), "{found}");
    for (role, function) in [
        ("UsageIngestRole", "UsageIngestFunction"),
        ("UsageQueueRole", "UsageQueueFunction"),
    ] {
        let r = &|t: &mut Value| {
            t["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
                .as_array_mut()
                .unwrap()
                .retain(|s| s["Sid"] != "QueueJobs");
        };
        assert!(
            broken(r).contains(&format!("{role} may send elsewhere")),
            "{role}"
        );
        let r = &|t: &mut Value| {
            t["Resources"][function]["Properties"]["Environment"]["Variables"]
                .as_object_mut()
                .unwrap()
                .remove("KOOGALLERY_QUEUE_URL");
        };
        assert!(
            broken(r).contains(&format!("{function} does not name the jobs queue")),
            "{function}"
        );
    }
}

/// Which parts of the secrets each function may read, and so holds: exactly the
/// parts it uses. The callbacks' come from the registry (`needs.keys`: the callback keys).
fn secret_parts(function: &str) -> Option<Vec<SecretPart>> {
    use SecretPart::*;
    Some(match function {
        // Verifies and signs KooGallery's calls.
        "EdgeFunction" => vec![CallbackKeys],
        // Query Order (AK/SK) and the webhook's signature.
        "ProvisionWorkerFunction" => vec![OpenApi, Webhook],
        // The push (AK/SK), its body signed with the basic-interface key.
        "UsagePushFunction" => vec![CallbackKeys, OpenApi],
        // Internet-facing: the usage key, and nothing else.
        "UsageIngestFunction" => vec![Usage],
        // The license service: its keys, the AK/SK (KooGallery's License API), the usage key
        // (the vendor's upload route).
        "LicenseApiFunction" => vec![License, OpenApi, Usage],
        // The daily usage statistics: the AK/SK.
        "LicenseUsageFunction" => vec![OpenApi],
        // The SSO function opens its secrets with KMS; it reads none from Secrets Manager.
        // The admin function reads the table and the queues only.
        "ReconcilerFunction" | "UsageQueueFunction" | "SsoFunction" | "AdminFunction" => vec![],
        other => {
            let r = REGISTRY
                .iter()
                .find(|r| format!("{}Function", r.resource_prefix()) == other)?;
            [
                (r.needs.keys, CallbackKeys),
                (r.needs.client_secret, KitRsa),
            ]
            .into_iter()
            .filter_map(|(needed, part)| needed.then_some(part))
            .collect()
        }
    })
}

/// The secret resource of each part.
const SECRETS: [(SecretPart, &str); 6] = [
    (SecretPart::CallbackKeys, "KeysSecret"),
    (SecretPart::OpenApi, "OpenApiSecret"),
    (SecretPart::Webhook, "WebhookSecret"),
    (SecretPart::Usage, "UsageKeySecret"),
    (SecretPart::KitRsa, "KitRsaSecret"),
    (SecretPart::License, "LicenseSecret"),
];

fn secret_of(part: SecretPart) -> &'static str {
    SECRETS
        .iter()
        .find(|(p, _)| *p == part)
        .map(|(_, id)| *id)
        .unwrap()
}

/// Every way a function could read more of the secrets than it uses, in words: the secrets are
/// the four parts, each created holding its own fields only; a function is named exactly its
/// parts' secrets, and its role may `GetSecretValue` on exactly those, nothing else.
fn secret_problems(template: &Value) -> Vec<String> {
    let resources = template["Resources"].as_object().expect("Resources");
    let mut out = Vec::new();
    let secrets: BTreeSet<&str> = resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::SecretsManager::Secret")
        .map(|(id, _)| id.as_str())
        .collect();
    let expected: BTreeSet<&str> = SECRETS.iter().map(|(_, id)| *id).collect();
    if secrets != expected {
        out.push(format!("the secrets are {secrets:?}, not {expected:?}"));
    }
    for (part, id) in SECRETS {
        let p = &resources.get(id).cloned().unwrap_or_default()["Properties"];
        let generated = &p["GenerateSecretString"];
        let initial = p["SecretString"]
            .as_str()
            .or(generated["SecretStringTemplate"].as_str())
            .unwrap_or("{}");
        let mut fields: Vec<String> = serde_json::from_str::<Map<String, Value>>(initial)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_else(|_| vec![format!("(not JSON: {initial})")]);
        fields.extend(generated["GenerateStringKey"].as_str().map(str::to_owned));
        for field in fields {
            if !part.fields().contains(&field.as_str()) {
                out.push(format!(
                    "{id} is created with {field}, not a field of {part:?}"
                ));
            }
        }
    }
    let mut readers = BTreeSet::new();
    for (id, function) in resources {
        if function["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        let Some(parts) = secret_parts(id) else {
            out.push(format!("{id}: which secrets it may read is not listed"));
            continue;
        };
        // JSON values compared as their text (`Value` has no order).
        let named: BTreeSet<(String, String)> = function["Properties"]["Environment"]["Variables"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(var, _)| var.ends_with("SECRET_ID"))
            .map(|(var, v)| (var.clone(), v.to_string()))
            .collect();
        let expected: BTreeSet<(String, String)> = parts
            .iter()
            .map(|p| {
                (
                    p.env_var().to_owned(),
                    json!({"Ref": secret_of(*p)}).to_string(),
                )
            })
            .collect();
        if named != expected {
            out.push(format!(
                "{id} is named the secrets {named:?}, not exactly {expected:?}"
            ));
        }
        let Some(role) = function["Properties"]["Role"]["Fn::GetAtt"][0].as_str() else {
            out.push(format!("{id} has no role of its own"));
            continue;
        };
        readers.insert(role.to_owned());
        let mut actions = BTreeSet::new();
        let mut readable: BTreeSet<String> = BTreeSet::new();
        for s in statements(&resources.get(role).cloned().unwrap_or_default()) {
            let secret_actions: Vec<String> = strings(&s["Action"])
                .into_iter()
                .filter(|a| a.starts_with("secretsmanager:") || a == "*")
                .collect();
            let on_secret = match &s["Resource"] {
                Value::Array(a) => a.clone(),
                other => vec![other.clone()],
            };
            let names_a_secret = on_secret
                .iter()
                .any(|r| SECRETS.iter().any(|(_, id)| r == &json!({"Ref": id})));
            if secret_actions.is_empty() && !names_a_secret {
                continue;
            }
            actions.extend(strings(&s["Action"]));
            readable.extend(on_secret.iter().map(Value::to_string));
        }
        let want_actions: BTreeSet<String> = if parts.is_empty() {
            BTreeSet::new()
        } else {
            ["secretsmanager:GetSecretValue".to_owned()].into()
        };
        let want: BTreeSet<String> = parts
            .iter()
            .map(|p| json!({"Ref": secret_of(*p)}).to_string())
            .collect();
        if actions != want_actions || readable != want {
            out.push(format!(
                "{role} may do {actions:?} on {readable:?}, not exactly {want_actions:?} on {want:?}"
            ));
        }
    }
    for (id, r) in resources {
        if r["Type"] == "AWS::IAM::Role"
            && !readers.contains(id)
            && statements(r).iter().any(|s| {
                strings(&s["Action"])
                    .iter()
                    .any(|a| a.starts_with("secretsmanager:"))
            })
        {
            out.push(format!("{id} may read secrets and runs no function"));
        }
    }
    out
}

#[test]
fn each_function_may_read_exactly_the_secrets_it_uses() {
    let found = secret_problems(&load());
    assert!(
        found.is_empty(),
        "template.yaml, secrets:\n{}",
        found.join("\n")
    );
}

/// Each check of [`secret_problems`] catches the edit that would break it.
#[test]
fn secret_drift_is_reported() {
    let template = load();
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut t = template.clone();
        f(&mut t);
        secret_problems(&t).join("\n")
    };
    let read_keys = |t: &mut Value, role: &str, resource: Value| {
        for s in t["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
            .as_array_mut()
            .unwrap()
        {
            if s["Sid"] == "ReadKeys" {
                s["Resource"] = resource.clone();
            }
        }
    };
    // The single keys secret of earlier releases, read by the internet-facing ingestion.
    let r = |t: &mut Value| read_keys(t, "UsageIngestRole", json!({"Ref": "KeysSecret"}));
    assert!(broken(&r).contains("UsageIngestRole may do"));
    let r = |t: &mut Value| {
        read_keys(
            t,
            "ProvisionWorkerRole",
            json!([{"Ref": "OpenApiSecret"}, {"Ref": "WebhookSecret"}, {"Ref": "UsageKeySecret"}]),
        )
    };
    assert!(broken(&r).contains("ProvisionWorkerRole may do"));
    let r = |t: &mut Value| {
        t["Resources"]["EdgeFunction"]["Properties"]["Environment"]["Variables"]["KOOGALLERY_OPENAPI_SECRET_ID"] =
            json!({"Ref": "OpenApiSecret"});
    };
    assert!(broken(&r).contains("EdgeFunction is named the secrets"));
    let r = |t: &mut Value| {
        t["Resources"]["ProvisionWorkerFunction"]["Properties"]["Environment"]["Variables"]
            .as_object_mut()
            .unwrap()
            .remove("KOOGALLERY_WEBHOOK_SECRET_ID");
    };
    assert!(broken(&r).contains("ProvisionWorkerFunction is named the secrets"));
    let r = |t: &mut Value| {
        t["Resources"]["KeysSecret"]["Properties"]["GenerateSecretString"]["SecretStringTemplate"] =
            json!(r#"{"kitKey":"REPLACE_ME","ak":"","sk":""}"#);
    };
    assert!(broken(&r).contains("KeysSecret is created with ak"));
    let r = |t: &mut Value| {
        t["Resources"]["ReconcilerRole"]["Properties"]["Policies"][0]["PolicyDocument"]
            ["Statement"]
            .as_array_mut()
            .unwrap()
            .push(json!({"Effect": "Allow", "Action": "secretsmanager:*", "Resource": {"Ref": "WebhookSecret"}}));
    };
    assert!(broken(&r).contains("ReconcilerRole may do"));
    let r = |t: &mut Value| {
        t["Resources"]["ExtraSecret"] = json!({"Type": "AWS::SecretsManager::Secret"});
        t["Resources"]["ExtraFunction"] = json!({"Type": "AWS::Serverless::Function"});
    };
    let found = broken(&r);
    assert!(found.contains("the secrets are"), "{found}");
    assert!(found.contains("ExtraFunction: which secrets"), "{found}");
}

/// Every method on the production URL and on every Kit path reaches the edge, which answers what
/// it does not serve with a signed `000002` (docs/protocol/decisions.md §3); a route narrower than
/// that would let API Gateway answer KooGallery with a bare, unsigned 404.
#[test]
fn every_method_and_kit_path_of_the_production_url_reaches_the_edge() {
    let template = load();
    let events = &template["Resources"]["EdgeFunction"]["Properties"]["Events"];
    let routes: Vec<(String, String)> = events
        .as_object()
        .expect("the edge has events")
        .values()
        .filter(|e| e["Type"] == "HttpApi")
        .map(|e| {
            let p = &e["Properties"];
            (
                p["Method"].as_str().unwrap_or_default().to_owned(),
                p["Path"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for path in ["/produce", "/produce/produceAPI/{proxy+}"] {
        assert!(
            routes
                .iter()
                .any(|(m, p)| m.eq_ignore_ascii_case("ANY") && p == path),
            "the edge has no ANY route for {path}: {routes:?}"
        );
    }
}

/// The crates under `functions/`: each directory's package name and its binaries' names.
fn function_crates() -> Vec<(String, String, Vec<String>)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../functions");
    let mut crates: Vec<(String, String, Vec<String>)> = std::fs::read_dir(dir)
        .expect("functions/")
        .map(|e| e.expect("functions/ entry").path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .map(|p| {
            let text = std::fs::read_to_string(p.join("Cargo.toml")).expect("Cargo.toml");
            // The `name` of each table: [package] first, then every [[bin]].
            let mut section = "";
            let (mut package, mut bins) = (String::new(), Vec::new());
            for line in text.lines().map(str::trim) {
                if line.starts_with('[') {
                    section = line;
                } else if let Some(name) = line
                    .strip_prefix("name = \"")
                    .and_then(|n| n.strip_suffix('"'))
                {
                    match section {
                        "[package]" => package = name.to_owned(),
                        "[[bin]]" => bins.push(name.to_owned()),
                        _ => {}
                    }
                }
            }
            let dir = p.file_name().unwrap().to_string_lossy().into_owned();
            (dir, package, bins)
        })
        .collect();
    crates.sort();
    crates
}

/// Every way a function could deploy other code than its own crate's binary, in words. `make build`
/// compiles every crate under `functions/` in one `cargo lambda build`; `sam build` then runs the
/// Makefile's `build-%` rule (BuildMethod makefile, the Makefile in ContextPath `.`) in a copy of the
/// function's CodeUri, which copies the binary named after the crate found there. So each function
/// must have its own CodeUri, `functions/<crate>`, whose crate builds one binary of its own name, and
/// every crate must be some function's.
fn packaging_problems(template: &Value, makefile: &str) -> Vec<String> {
    let resources = template["Resources"].as_object().expect("Resources");
    let crates = function_crates();
    let mut out = Vec::new();
    let mut used: BTreeSet<String> = BTreeSet::new();
    for (id, function) in resources {
        if function["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        let metadata = &function["Metadata"];
        if metadata["BuildMethod"] != "makefile" || metadata["ContextPath"] != "." {
            out.push(format!(
                "{id} is not packaged by the Makefile's build-% rule (Metadata {metadata})"
            ));
        }
        let code_uri = &function["Properties"]["CodeUri"];
        let Some(dir) = code_uri.as_str().and_then(|c| c.strip_prefix("functions/")) else {
            out.push(format!(
                "{id}'s CodeUri {code_uri} is not a functions/<crate>"
            ));
            continue;
        };
        match crates.iter().find(|(d, _, _)| d == dir) {
            None => out.push(format!("{id}'s CodeUri functions/{dir} is no crate")),
            Some((_, package, bins)) if package != dir || bins != &vec![dir.to_owned()] => {
                out.push(format!(
                    "functions/{dir} ({id}) is package {package} with binaries {bins:?}, not one binary {dir}"
                ))
            }
            Some(_) => {}
        }
        if !used.insert(dir.to_owned()) {
            out.push(format!("{id} shares functions/{dir} with another function"));
        }
    }
    for (dir, _, _) in &crates {
        if !used.contains(dir) {
            out.push(format!("functions/{dir} is built but no function runs it"));
        }
    }
    let rule = makefile
        .split("\n\n")
        .find(|block| block.lines().any(|l| l.starts_with("build-%:")))
        .unwrap_or_default();
    if !rule.contains("Cargo.toml") || !rule.contains("$(LAMBDA_DIR)/$$crate/bootstrap") {
        out.push(format!(
            "the Makefile's build-% rule does not copy the CodeUri crate's binary: {rule:?}"
        ));
    }
    let build = makefile
        .split("\n\n")
        .find(|block| block.lines().any(|l| l.starts_with("build:")))
        .unwrap_or_default();
    if !build.contains("lambda build") || !build.contains("$(addprefix -p ,$(FUNCTIONS))") {
        out.push(format!(
            "`make build` does not compile every function in one cargo lambda build: {build:?}"
        ));
    }
    if !makefile.contains("FUNCTIONS := $(notdir $(wildcard $(ROOT)/functions/*))") {
        out.push("the Makefile's FUNCTIONS is not every directory under functions/".into());
    }
    out
}

fn makefile() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Makefile")).expect("Makefile")
}

#[test]
fn every_function_deploys_its_own_crate_from_the_single_build() {
    let found = packaging_problems(&load(), &makefile());
    assert!(
        found.is_empty(),
        "template.yaml and the Makefile, packaging:\n{}",
        found.join("\n")
    );
}

/// Each check of [`packaging_problems`] catches the edit that would break it.
#[test]
fn packaging_drift_is_reported() {
    let template = load();
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut t = template.clone();
        f(&mut t);
        packaging_problems(&t, &makefile()).join("\n")
    };
    // A static CodeUri in a loop: every function of the loop would run the first one's code.
    let r = |t: &mut Value| {
        t["Resources"]["RefreshInstanceFunction"]["Properties"]["CodeUri"] =
            json!("functions/new-instance");
    };
    let found = broken(&r);
    assert!(found.contains("shares functions/new-instance"), "{found}");
    assert!(
        found.contains("functions/refresh-instance is built but no function runs it"),
        "{found}"
    );
    let r = |t: &mut Value| {
        t["Resources"]["EdgeFunction"]["Metadata"]["BuildMethod"] = json!("rust-cargolambda");
    };
    assert!(broken(&r).contains("EdgeFunction is not packaged by the Makefile"));
    let r = |t: &mut Value| {
        t["Resources"]["UsagePushFunction"]["Properties"]["CodeUri"] = json!("target/lambda");
    };
    assert!(broken(&r).contains("UsagePushFunction's CodeUri"));
    let r = |t: &mut Value| {
        t["Resources"]["ReconcilerFunction"]["Properties"]["CodeUri"] = json!("functions/gone");
    };
    assert!(broken(&r).contains("functions/gone is no crate"));
    let found = packaging_problems(&template, &makefile().replace("build-%:", "build-x:"));
    assert!(
        found.iter().any(|p| p.contains("build-% rule")),
        "{found:?}"
    );
}

/// Single sign-on (docs/protocol/decisions.md §19): every route the provider serves reaches the
/// SSO function with its method; the function is deployed only with `SsoIssuer`, reads no secret,
/// touches only its own partitions and reads the directory; the auth-centre alarm watches what
/// the code writes (checked above with the other alarms).
#[test]
fn sso_is_routed_conditional_and_least_privileged() {
    let t = load();
    let r = &t["Resources"];
    let f = &r["SsoFunction"];
    assert_eq!(f["Condition"], "HasSso");
    assert_eq!(f["Properties"]["CodeUri"], "functions/sso");
    let mut routed: BTreeSet<(String, String)> = f["Properties"]["Events"]
        .as_object()
        .unwrap()
        .values()
        .map(|e| {
            assert_eq!(e["Type"], "HttpApi");
            (
                e["Properties"]["Path"].as_str().unwrap().to_owned(),
                e["Properties"]["Method"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for path in sso::PATHS {
        let post = matches!(
            *path,
            "/oidc/token" | "/oidc/userinfo" | "/oidc/logout" | "/sso/continue"
        );
        let get = !matches!(*path, "/oidc/token" | "/sso/continue");
        for (method, wanted) in [("GET", get), ("POST", post)] {
            assert_eq!(
                routed.remove(&((*path).to_owned(), method.to_owned())),
                wanted,
                "{method} {path}"
            );
        }
    }
    assert!(routed.is_empty(), "routes no path serves: {routed:?}");
    let env = env_names(f);
    for var in [
        "KOOGALLERY_QUEUE_URL",
        "KOOGALLERY_SSO_ISSUER",
        "KOOGALLERY_SSO_APP_ID",
        "KOOGALLERY_SSO_UNIFIED_LOGIN_URL",
        "KOOGALLERY_OIDC_CLIENTS",
        "KOOGALLERY_CREDENTIALS_KEY_ID",
    ] {
        assert!(env.contains(var), "{var}");
    }
    assert!(
        !env.iter().any(|v| v.ends_with("_SECRET_ID")),
        "no secret: {env:?}"
    );
    let statements = statements(&r["SsoRole"]);
    let keys_of = |sid: &str| -> Vec<String> {
        let s = statements
            .iter()
            .find(|s| s["Sid"] == sid)
            .unwrap_or_else(|| panic!("{sid}"));
        strings(&s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"])
    };
    let mut own = keys_of("SsoTable");
    own.sort();
    let mut expected: Vec<String> = koogallery_aws::sso::keys::LEADING_KEYS
        .iter()
        .map(|k| (*k).to_owned())
        .collect();
    expected.sort();
    assert_eq!(own, expected);
    assert_eq!(keys_of("ReadDirectory"), vec!["DIR#*".to_owned()]);
    let actions: BTreeSet<String> = statements
        .iter()
        .flat_map(|s| strings(&s["Action"]))
        .collect();
    assert!(
        !actions.iter().any(|a| a.starts_with("secretsmanager:")),
        "{actions:?}"
    );
    let sqs: Vec<&String> = actions.iter().filter(|a| a.starts_with("sqs:")).collect();
    assert_eq!(
        sqs,
        ["sqs:SendMessage"],
        "it only queues the delivery of sessionsEnded"
    );
    assert!(!actions.contains("dynamodb:Scan"));
    assert_eq!(r["SsoAuthCentreFailuresAlarm"]["Condition"], "HasSso");
    // The worker ends the sessions a Kit sync ends: with SSO only, on the same partitions.
    let worker_policy = &r["SsoWorkerPolicy"];
    assert_eq!(worker_policy["Condition"], "HasSso");
    assert_eq!(
        worker_policy["Properties"]["Roles"],
        json!([{"Ref": "ProvisionWorkerRole"}])
    );
    let worker_statements: Vec<Value> = worker_policy["Properties"]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap()
        .clone();
    let mut worker_keys = strings(
        &worker_statements
            .iter()
            .find(|s| s["Sid"] == "SsoTable")
            .unwrap()["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"],
    );
    worker_keys.sort();
    assert_eq!(worker_keys, expected);
    let worker_env = env_names(&r["ProvisionWorkerFunction"]);
    assert!(
        worker_env.contains("KOOGALLERY_SSO_ISSUER"),
        "{worker_env:?}"
    );
}

/// The parameters a check sets, the others keeping their defaults.
type Params = Map<String, Value>;

/// Whether the template's condition `name` holds with `params`.
fn condition(template: &Value, name: &str, params: &Params) -> bool {
    let c = &template["Conditions"][name];
    assert!(!c.is_null(), "no condition {name}");
    holds(template, c, params)
}

fn holds(template: &Value, c: &Value, params: &Params) -> bool {
    let (function, args) = c
        .as_object()
        .and_then(|m| m.iter().next())
        .unwrap_or_else(|| panic!("not a condition: {c}"));
    let all = || args.as_array().into_iter().flatten();
    match function.as_str() {
        "Fn::Not" => !holds(template, &args[0], params),
        "Fn::And" => all().all(|a| holds(template, a, params)),
        "Fn::Or" => all().any(|a| holds(template, a, params)),
        "Fn::Equals" => resolve(template, &args[0], params) == resolve(template, &args[1], params),
        "Condition" | "Fn::Condition" => condition(template, args.as_str().unwrap(), params),
        other => panic!("condition function {other} not evaluated here"),
    }
}

/// `v` as CloudFormation sees it with `params`: each `Ref` to a parameter replaced by its value,
/// each `Fn::If` decided, and what became `AWS::NoValue` left out of its list or object; other
/// references kept as they are.
fn resolve(template: &Value, v: &Value, params: &Params) -> Value {
    let no_value = json!({"Ref": "AWS::NoValue"});
    match v {
        Value::Object(m) if m.len() == 1 && m.contains_key("Ref") => {
            let name = m["Ref"].as_str().unwrap_or_default();
            let default = &template["Parameters"][name]["Default"];
            match params.get(name) {
                Some(value) => value.clone(),
                None if !default.is_null() => default.clone(),
                None => v.clone(),
            }
        }
        Value::Object(m) if m.len() == 1 && m.contains_key("Fn::If") => {
            let args = m["Fn::If"]
                .as_array()
                .expect("Fn::If takes [condition, then, else]");
            let name = args[0].as_str().expect("Fn::If's condition");
            let branch = if condition(template, name, params) {
                &args[1]
            } else {
                &args[2]
            };
            resolve(template, branch, params)
        }
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), resolve(template, v, params)))
                .filter(|(_, v)| *v != no_value)
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|v| resolve(template, v, params))
                .filter(|v| *v != no_value)
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Whether resource `id` is created with `params` (it exists, and its condition, if any, holds).
fn created(template: &Value, id: &str, params: &Params) -> bool {
    let r = &template["Resources"][id];
    !r.is_null()
        && r["Condition"]
            .as_str()
            .is_none_or(|c| condition(template, c, params))
}

/// `v` resolved with `params`; `None` for a property left out (absent or `AWS::NoValue`).
fn value_of(template: &Value, v: &Value, params: &Params) -> Option<Value> {
    let v = resolve(template, v, params);
    (!v.is_null() && v != json!({"Ref": "AWS::NoValue"})).then_some(v)
}

const GIVEN_TOPIC: &str = "arn:aws:sns:eu-west-1:123456789012:ops";
const EMAIL: &str = "ops@example.com";

/// Every way the alarms' notifications differ from this, in words: the stack creates the SNS topic
/// `AlarmTopic` exactly when `AlarmTopicArn` is empty (and no other topic), and subscribes
/// `AlarmEmail` to it, and nothing else, exactly when it is set too; every alarm (and OK) notifies
/// `AlarmTopicArn` when it is given, else `AlarmTopic`; the output `AlarmTopicArn` always names
/// the topic in use.
fn alarm_topic_problems(template: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let resources = template["Resources"].as_object().expect("Resources");
    let of_type = |t: &str| -> Vec<&String> {
        resources
            .iter()
            .filter(|(_, r)| r["Type"] == t)
            .map(|(id, _)| id)
            .collect()
    };
    let alarms = of_type("AWS::CloudWatch::Alarm");
    if alarms.len() < 20 {
        out.push(format!("only {} alarms in the template", alarms.len()));
    }
    let topic_ref = json!({"Ref": "AlarmTopic"});
    for given in ["", GIVEN_TOPIC] {
        for email in ["", EMAIL] {
            let params: Params = [
                ("AlarmTopicArn".to_owned(), json!(given)),
                ("AlarmEmail".to_owned(), json!(email)),
            ]
            .into_iter()
            .collect();
            let case = format!("AlarmTopicArn={given:?} AlarmEmail={email:?}");
            let creates = given.is_empty();
            let topics: Vec<&String> = of_type("AWS::SNS::Topic")
                .into_iter()
                .filter(|id| created(template, id, &params))
                .collect();
            let wanted_topics: Vec<&str> = if creates { vec!["AlarmTopic"] } else { vec![] };
            if topics != wanted_topics {
                out.push(format!(
                    "{case}: the stack creates the SNS topics {topics:?}, not {wanted_topics:?}"
                ));
            }
            // Every subscription created, as (topic, protocol, endpoint): the topics' own
            // `Subscription` lists and the `AWS::SNS::Subscription` resources.
            let mut subscriptions: Vec<Value> = Vec::new();
            for id in &topics {
                let listed = value_of(
                    template,
                    &resources[id.as_str()]["Properties"]["Subscription"],
                    &params,
                );
                for s in listed
                    .as_ref()
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    subscriptions.push(json!([{"Ref": id}, s["Protocol"], s["Endpoint"]]));
                }
            }
            for id in of_type("AWS::SNS::Subscription") {
                if created(template, id, &params) {
                    let p = resolve(template, &resources[id.as_str()]["Properties"], &params);
                    subscriptions.push(json!([p["TopicArn"], p["Protocol"], p["Endpoint"]]));
                }
            }
            let wanted_subscriptions = if creates && !email.is_empty() {
                vec![json!([topic_ref, "email", EMAIL])]
            } else {
                vec![]
            };
            if subscriptions != wanted_subscriptions {
                out.push(format!(
                    "{case}: the stack subscribes {subscriptions:?}, not {wanted_subscriptions:?}"
                ));
            }
            let in_use = if creates {
                topic_ref.clone()
            } else {
                json!(given)
            };
            let wanted = Some(json!([in_use]));
            for id in &alarms {
                if !created(template, id, &params) {
                    continue;
                }
                for property in ["AlarmActions", "OKActions"] {
                    let v = &resources[id.as_str()]["Properties"][property];
                    let actions = value_of(template, v, &params);
                    if actions != wanted {
                        out.push(format!(
                            "{case}: {id} {property} is {actions:?}, not {wanted:?} (the topic in use)"
                        ));
                    }
                }
            }
            let output = &template["Outputs"]["AlarmTopicArn"];
            let shown = if output.is_null()
                || output["Condition"]
                    .as_str()
                    .is_some_and(|c| !condition(template, c, &params))
            {
                None
            } else {
                value_of(template, &output["Value"], &params)
            };
            if shown.as_ref() != Some(&in_use) {
                out.push(format!(
                    "{case}: the output AlarmTopicArn is {shown:?}, not {in_use} (the topic in use)"
                ));
            }
        }
    }
    out
}

#[test]
fn alarms_notify_the_given_topic_or_the_stacks_own() {
    let found = alarm_topic_problems(&load());
    assert!(
        found.is_empty(),
        "template.yaml, alarm notifications:\n{}",
        found.join("\n")
    );
}

/// Each check of [`alarm_topic_problems`] catches the edit that would break it.
#[test]
fn alarm_topic_drift_is_reported() {
    let template = load();
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut t = template.clone();
        f(&mut t);
        alarm_topic_problems(&t).join("\n")
    };
    let given = format!("AlarmTopicArn={GIVEN_TOPIC:?}");
    // An alarm that notifies only a given topic, and one that notifies only the stack's.
    let r = &|t: &mut Value| {
        t["Resources"]["EdgeErrorsAlarm"]["Properties"]["AlarmActions"] = json!({"Fn::If": ["GivesAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]});
    };
    let found = broken(r);
    assert!(
        found.contains("AlarmTopicArn=\"\" AlarmEmail=\"\": EdgeErrorsAlarm AlarmActions is None"),
        "{found}"
    );
    let r = &|t: &mut Value| {
        t["Resources"]["EdgeDurationAlarm"]["Properties"]["OKActions"] =
            json!([{"Ref": "AlarmTopic"}]);
    };
    let found = broken(r);
    assert!(
        found.contains(&format!(
            "{given} AlarmEmail=\"\": EdgeDurationAlarm OKActions"
        )),
        "{found}"
    );
    // A missing OKActions, and a new alarm without actions.
    let r = &|t: &mut Value| {
        t["Resources"]["WorkerErrorsAlarm"]["Properties"]
            .as_object_mut()
            .unwrap()
            .remove("OKActions");
    };
    assert!(broken(r).contains("WorkerErrorsAlarm OKActions is None"));
    let r = &|t: &mut Value| {
        t["Resources"]["ExtraAlarm"] =
            json!({"Type": "AWS::CloudWatch::Alarm", "Properties": {"MetricName": "Errors"}});
    };
    assert!(broken(r).contains("ExtraAlarm AlarmActions is None"));
    // A topic created beside the given one, another topic, and no topic without a given one.
    let r = &|t: &mut Value| {
        t["Resources"]["AlarmTopic"]
            .as_object_mut()
            .unwrap()
            .remove("Condition");
    };
    let found = broken(r);
    assert!(
        found.contains(&format!(
            "{given} AlarmEmail=\"\": the stack creates the SNS topics [\"AlarmTopic\"], not []"
        )),
        "{found}"
    );
    let r = &|t: &mut Value| {
        t["Resources"]["OtherTopic"] = json!({"Type": "AWS::SNS::Topic"});
    };
    assert!(broken(r).contains("the SNS topics [\"AlarmTopic\", \"OtherTopic\"]"));
    let r = &|t: &mut Value| {
        t["Conditions"]["CreatesAlarmTopic"] =
            json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]});
    };
    let found = broken(r);
    assert!(
        found.contains(
            "AlarmTopicArn=\"\" AlarmEmail=\"\": the stack creates the SNS topics [], not [\"AlarmTopic\"]"
        ),
        "{found}"
    );
    // A wrong subscription: another protocol or address, with no AlarmEmail, to a given topic, or
    // a second one on the topic itself.
    let r = &|t: &mut Value| {
        t["Resources"]["AlarmEmailSubscription"]["Properties"]["Protocol"] = json!("sms");
    };
    assert!(broken(r).contains("\"sms\""));
    let r = &|t: &mut Value| {
        t["Resources"]["AlarmEmailSubscription"]["Properties"]["Endpoint"] =
            json!("ops@example.org");
    };
    assert!(broken(r).contains("ops@example.org"));
    let r = &|t: &mut Value| {
        t["Resources"]["AlarmEmailSubscription"]["Condition"] = json!("CreatesAlarmTopic");
    };
    let found = broken(r);
    assert!(
        found.contains("AlarmTopicArn=\"\" AlarmEmail=\"\": the stack subscribes"),
        "{found}"
    );
    let r = &|t: &mut Value| {
        t["Resources"]["AlarmEmailSubscription"]["Condition"] = json!("GivesAlarmTopic");
        t["Resources"]["AlarmEmailSubscription"]["Properties"]["TopicArn"] =
            json!({"Ref": "AlarmTopicArn"});
    };
    let found = broken(r);
    assert!(
        found.contains(&format!(
            "{given} AlarmEmail={EMAIL:?}: the stack subscribes"
        )),
        "{found}"
    );
    let r = &|t: &mut Value| {
        t["Resources"]["AlarmTopic"]["Properties"]["Subscription"] =
            json!([{"Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}}]);
    };
    assert!(broken(r).contains(&format!("AlarmEmail={EMAIL:?}: the stack subscribes")));
    // A missing output, and one only when the stack creates the topic.
    let r = &|t: &mut Value| {
        t["Outputs"]
            .as_object_mut()
            .unwrap()
            .remove("AlarmTopicArn");
    };
    assert!(broken(r).contains("the output AlarmTopicArn is None"));
    let r = &|t: &mut Value| {
        t["Outputs"]["AlarmTopicArn"] =
            json!({"Condition": "CreatesAlarmTopic", "Value": {"Ref": "AlarmTopic"}});
    };
    let found = broken(r);
    assert!(
        found.contains(&format!(
            "{given} AlarmEmail=\"\": the output AlarmTopicArn is None"
        )),
        "{found}"
    );
}

/// One observation of every kind the code records.
fn every_metric() -> Vec<koogallery::metrics::Metric> {
    use koogallery::{ResultCode, metrics::Metric::*};
    let all = vec![
        Callback {
            family: "v2-basic",
            activity: "newInstance",
            result_code: ResultCode::Success,
        },
        ProvisioningSeconds { seconds: 1.0 },
        ProvisioningRetries,
        ProvisionerMisconfigured,
        ProvisioningDeadlinePassed,
        NoticeDelivered,
        NoticeRetries,
        NoticeDeadlinePassed,
        Reconciled {
            stuck_provisioning: 1,
            undelivered_notices: 1,
            parked_outboxes: 1,
        },
        UsagePass {
            accepted: 1,
            rejected: 1,
            deferred: 1,
            near_horizon: 1,
        },
        UsageRejected,
        UsageBatchRefused,
        UsagePushFailed,
        UsagePushMisconfigured,
        UsagePushSystemicRefusal,
        SsoLogin { outcome: "ok" },
        SsoRefresh { ok: true },
        SsoAuthCentreFailure,
        LicenseActivationFailure,
        LicenseUsagePushFailure,
    ];
    // A new kind of observation stops the build here until it is listed above.
    for m in &all {
        match m {
            Callback { .. }
            | ProvisioningSeconds { .. }
            | ProvisioningRetries
            | ProvisionerMisconfigured
            | ProvisioningDeadlinePassed
            | NoticeDelivered
            | NoticeRetries
            | NoticeDeadlinePassed
            | Reconciled { .. }
            | UsagePass { .. }
            | UsageRejected
            | UsageBatchRefused
            | UsagePushFailed
            | UsagePushMisconfigured
            | UsagePushSystemicRefusal
            | SsoLogin { .. }
            | SsoRefresh { .. }
            | SsoAuthCentreFailure
            | LicenseActivationFailure
            | LicenseUsagePushFailure => {}
        }
    }
    all
}

/// The metrics the code emits, from its own EMF lines: each metric name with each dimension set it
/// is published under, and the `Component` it carries (the one dimension value fixed per metric).
fn emitted_metrics() -> BTreeSet<(String, BTreeSet<String>, Option<String>)> {
    let mut out = BTreeSet::new();
    for metric in every_metric() {
        let line: Value =
            serde_json::from_str(&koogallery::metrics::emf_line("N", &metric, 0)).unwrap();
        let meta = &line["_aws"]["CloudWatchMetrics"][0];
        for set in meta["Dimensions"].as_array().unwrap() {
            let keys: BTreeSet<String> = strings(set).into_iter().collect();
            let component = keys
                .contains("Component")
                .then(|| line["Component"].as_str().unwrap().to_owned());
            for m in meta["Metrics"].as_array().unwrap() {
                let name = m["Name"].as_str().unwrap().to_owned();
                out.insert((name, keys.clone(), component.clone()));
            }
        }
    }
    out
}

/// The namespace the functions publish in (Globals), which the dashboard charts.
const NAMESPACE: &str = "KooGallery/${AWS::StackName}";

/// What the dashboard must show: (namespace, metric name, dimension key and value).
const CHARTED: [(&str, &str, &str, &str); 10] = [
    (NAMESPACE, "Callbacks", "ResultCode", "*"),
    (NAMESPACE, "ProvisioningTime", "Component", "worker"),
    (NAMESPACE, "NoticesDelivered", "Component", "worker"),
    (NAMESPACE, "NoticeRetries", "Component", "worker"),
    (NAMESPACE, "UsageAccepted", "Component", "metering"),
    (NAMESPACE, "UsageRejected", "Component", "metering"),
    (NAMESPACE, "UsageDeferred", "Component", "metering"),
    // Every dead-letter queue's depth is required below, from the queues' redrive policies.
    (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        "QueueName",
        "*",
    ),
    ("AWS/Lambda", "Duration", "FunctionName", "${EdgeFunction}"),
    ("AWS/Lambda", "Errors", "FunctionName", "${EdgeFunction}"),
];

/// Every way the operations dashboard differs from what the stack emits, in words: each chart of
/// the functions' namespace is of a metric `shared/src/metrics.rs` emits, with a dimension set it
/// is published under (and its `Component`); the AWS metrics are of this stack's dead-letter
/// queues and functions; the charts of [`CHARTED`] and of every dead-letter queue are there; and an
/// output gives the dashboard's address.
fn dashboard_problems(template: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let resources = template["Resources"].as_object().expect("Resources");
    let emitted = emitted_metrics();
    let namespace = &template["Globals"]["Function"]["Environment"]["Variables"]["KOOGALLERY_METRICS_NAMESPACE"];
    if *namespace != json!({"Fn::Sub": NAMESPACE}) {
        out.push(format!(
            "the functions publish in {namespace}, not {NAMESPACE}"
        ));
    }
    let of_type = |t: &str| -> BTreeSet<String> {
        resources
            .iter()
            .filter(|(_, r)| r["Type"] == t)
            .map(|(id, _)| id.clone())
            .collect()
    };
    let dead_letter_queues: BTreeSet<String> = resources
        .values()
        .filter_map(|r| {
            r["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    let functions = of_type("AWS::Serverless::Function");
    let dashboards = of_type("AWS::CloudWatch::Dashboard");
    if dashboards.len() != 1 {
        out.push(format!("{} dashboards, not one", dashboards.len()));
    }
    // (namespace, metric, dimension key, dimension value) of every chart.
    let mut charted: BTreeSet<(String, String, String, String)> = BTreeSet::new();
    for id in &dashboards {
        let body = &resources[id]["Properties"]["DashboardBody"];
        let text = body["Fn::Sub"]
            .as_str()
            .or(body.as_str())
            .unwrap_or_default();
        let body: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                out.push(format!("{id}'s body is not JSON: {e}"));
                continue;
            }
        };
        let widgets = body["widgets"].as_array().cloned().unwrap_or_default();
        for w in widgets.iter().filter(|w| w["type"] == "metric") {
            let title = w["properties"]["title"].as_str().unwrap_or("untitled");
            let mut previous: Vec<String> = Vec::new();
            for entry in w["properties"]["metrics"].as_array().into_iter().flatten() {
                let items = entry.as_array().cloned().unwrap_or_default();
                let (ns, name, dims) = if let Some(e) = items[0]["expression"].as_str() {
                    // SEARCH('{"<namespace>",<key>,...} MetricName="<name>"', ...)
                    // The namespace is quoted: it holds `}` (`${AWS::StackName}`).
                    let schema = e
                        .split_once("{\"")
                        .and_then(|(_, rest)| rest.split_once('"'))
                        .and_then(|(ns, rest)| {
                            let (keys, _) = rest.split_once('}')?;
                            let keys = keys
                                .split(',')
                                .skip(1)
                                .map(|k| k.trim_matches('"').to_owned());
                            Some(
                                std::iter::once(ns.to_owned())
                                    .chain(keys)
                                    .collect::<Vec<_>>(),
                            )
                        });
                    let name = e
                        .split_once("MetricName=\"")
                        .and_then(|(_, rest)| rest.split_once('"'))
                        .map(|(n, _)| n.to_owned());
                    match (e.starts_with("SEARCH("), schema, name) {
                        (true, Some(schema), Some(name)) => (
                            schema[0].clone(),
                            name,
                            schema[1..]
                                .iter()
                                .map(|k| (k.clone(), "*".to_owned()))
                                .collect::<Vec<_>>(),
                        ),
                        _ => {
                            out.push(format!("{title}: expression not understood: {e}"));
                            continue;
                        }
                    }
                } else {
                    // [namespace, name, key, value, ..., {options}], "." repeating the entry above.
                    let parts: Vec<String> = items
                        .iter()
                        .filter_map(Value::as_str)
                        .enumerate()
                        .map(|(i, s)| match s {
                            "." => previous.get(i).cloned().unwrap_or_default(),
                            s => s.to_owned(),
                        })
                        .collect();
                    previous = parts.clone();
                    if parts.len() < 2 || !parts.len().is_multiple_of(2) {
                        out.push(format!("{title}: metric not understood: {entry}"));
                        continue;
                    }
                    let dims = parts[2..]
                        .chunks(2)
                        .map(|kv| (kv[0].clone(), kv[1].clone()))
                        .collect();
                    (parts[0].clone(), parts[1].clone(), dims)
                };
                let keys: BTreeSet<String> = dims.iter().map(|(k, _)| k.clone()).collect();
                match ns.as_str() {
                    NAMESPACE => {
                        let component = dims
                            .iter()
                            .find(|(k, _)| k == "Component")
                            .map(|(_, v)| v.clone());
                        if !emitted.contains(&(name.clone(), keys.clone(), component.clone())) {
                            out.push(format!(
                                "{title}: {name} {dims:?} is not emitted (shared/src/metrics.rs)"
                            ));
                        }
                    }
                    "AWS/SQS" => {
                        let queue = dims
                            .iter()
                            .find(|(k, _)| k == "QueueName")
                            .and_then(|(_, v)| v.strip_prefix("${")?.strip_suffix(".QueueName}"));
                        if name != "ApproximateNumberOfMessagesVisible"
                            || dims.len() != 1
                            || !queue.is_some_and(|q| dead_letter_queues.contains(q))
                        {
                            out.push(format!(
                                "{title}: {name} {dims:?} is not the depth of a dead-letter queue of the stack"
                            ));
                        }
                    }
                    "AWS/Lambda" => {
                        let function = dims
                            .iter()
                            .find(|(k, _)| k == "FunctionName")
                            .and_then(|(_, v)| v.strip_prefix("${")?.strip_suffix('}'));
                        if !["Duration", "Errors", "Invocations", "Throttles"]
                            .contains(&name.as_str())
                            || dims.len() != 1
                            || !function.is_some_and(|f| functions.contains(f))
                        {
                            out.push(format!(
                                "{title}: {name} {dims:?} is not a Lambda metric of a function of the stack"
                            ));
                        }
                    }
                    other => out.push(format!("{title}: {name} in namespace {other}")),
                }
                for (k, v) in dims {
                    charted.insert((ns.clone(), name.clone(), k, v));
                }
            }
        }
    }
    let shown = |ns: &str, name: &str, key: &str, value: &str| {
        charted
            .iter()
            .any(|(n, m, k, v)| n == ns && m == name && k == key && (value == "*" || v == value))
    };
    for (ns, name, key, value) in CHARTED {
        if !shown(ns, name, key, value) {
            out.push(format!(
                "the dashboard does not chart {name} ({key}={value})"
            ));
        }
    }
    for queue in &dead_letter_queues {
        let value = format!("${{{queue}.QueueName}}");
        if !shown(
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            "QueueName",
            &value,
        ) {
            out.push(format!("the dashboard does not chart the depth of {queue}"));
        }
    }
    for id in &dashboards {
        let url = template["Outputs"]["DashboardUrl"]["Value"]["Fn::Sub"]
            .as_str()
            .unwrap_or_default();
        if !url.contains(&format!("#dashboards:name=${{{id}}}")) {
            out.push(format!("no output DashboardUrl opens {id}"));
        }
    }
    out
}

#[test]
fn the_dashboard_charts_only_metrics_that_are_emitted() {
    let found = dashboard_problems(&load());
    assert!(
        found.is_empty(),
        "template.yaml, dashboard:\n{}",
        found.join("\n")
    );
}

/// Each check of [`dashboard_problems`] catches the edit that would break it.
#[test]
fn dashboard_drift_is_reported() {
    let template = load();
    let edited = |from: &str, to: &str| {
        let mut t = template.clone();
        let body =
            &mut t["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"];
        let text = body.as_str().unwrap();
        assert!(text.contains(from), "{from}");
        *body = json!(text.replace(from, to));
        dashboard_problems(&t).join("\n")
    };
    // A metric the code does not emit, or under a dimension it does not carry.
    assert!(edited("\"NoticesDelivered\"", "\"NoticesSent\"").contains("NoticesSent"));
    let found = edited(
        "\"UsageDeferred\", \"Component\", \"metering\"",
        "\"UsageDeferred\", \"Component\", \"worker\"",
    );
    assert!(
        found.contains("UsageDeferred [(\"Component\", \"worker\")] is not emitted"),
        "{found}"
    );
    assert!(found.contains("does not chart UsageDeferred"), "{found}");
    let found = edited(
        "MetricName=\\\"Callbacks\\\"",
        "MetricName=\\\"Callback\\\"",
    );
    assert!(
        found.contains("Callback [(\"ResultCode\", \"*\")] is not emitted"),
        "{found}"
    );
    assert!(edited(",ResultCode}", ",Activity,ResultCode,Tenant}").contains("is not emitted"));
    assert!(
        edited(
            "KooGallery/${AWS::StackName}\", \"ProvisioningTime",
            "KooGallery\", \"ProvisioningTime"
        )
        .contains("ProvisioningTime in namespace KooGallery")
    );
    // A queue that is not a dead-letter queue, and a dead-letter queue no longer charted.
    let found = edited(
        "${UsageDeadLetterQueue.QueueName}",
        "${UsageQueue.QueueName}",
    );
    assert!(
        found.contains("is not the depth of a dead-letter queue"),
        "{found}"
    );
    assert!(
        found.contains("does not chart the depth of UsageDeadLetterQueue"),
        "{found}"
    );
    assert!(
        edited(
            "${EdgeFunction}\", {\"stat\": \"p99\"",
            "${EdgeLambda}\", {\"stat\": \"p99\""
        )
        .contains("is not a Lambda metric of a function of the stack")
    );
    assert!(edited("\"widgets\": [", "\"widgets\": [[").contains("is not JSON"));
    // The functions told another namespace than the one charted.
    let mut t = template.clone();
    t["Globals"]["Function"]["Environment"]["Variables"]["KOOGALLERY_METRICS_NAMESPACE"] =
        json!({"Fn::Sub": "KooGallery/${AWS::StackName}/v2"});
    assert!(
        dashboard_problems(&t)
            .join("\n")
            .contains("the functions publish in")
    );
    let mut t = template.clone();
    t["Outputs"].as_object_mut().unwrap().remove("DashboardUrl");
    assert!(
        dashboard_problems(&t)
            .join("\n")
            .contains("no output DashboardUrl")
    );
}

/// The edge keeps every call KooGallery makes in the exchange log on the table, the worker, the
/// usage push and the License functions every call they make (the webhook, the open API), and
/// the reconciler each pass: each is told the retention by
/// a parameter bounded as the setting is (`KOOGALLERY_EXCHANGE_LOG_DAYS`, its catalog default, at
/// most `MAX_RETENTION_DAYS`), and its role may put exactly the log's items, nothing else of the
/// `XLOG#` partitions and no other action there.
#[test]
fn every_caller_keeps_the_exchange_log_on_the_table() {
    use koogallery::config::catalog::EXCHANGE_LOG_DAYS;
    let template = load();
    let p = &template["Parameters"]["ExchangeLogDays"];
    assert_eq!(p["Type"], "Number");
    assert_eq!(
        Some(p["Default"].to_string().as_str()),
        EXCHANGE_LOG_DAYS.default,
        "the catalog's default"
    );
    assert_eq!(p["MinValue"], json!(0));
    assert_eq!(
        p["MaxValue"],
        json!(koogallery::exchange::MAX_RETENTION_DAYS)
    );
    assert_eq!(
        koogallery_aws::dynamo::exchanges::XLOG_PK_PREFIX,
        koogallery_aws::dynamo::EXCHANGE_LOG_LEADING_KEYS[0].trim_end_matches('*'),
        "the leading keys are the log's partitions"
    );
    for (function, role) in [
        ("EdgeFunction", "EdgeRole"),
        ("ProvisionWorkerFunction", "ProvisionWorkerRole"),
        ("UsagePushFunction", "UsagePushRole"),
        ("ReconcilerFunction", "ReconcilerRole"),
        ("LicenseApiFunction", "LicenseApiRole"),
        ("LicenseUsageFunction", "LicenseUsageRole"),
    ] {
        let f = &template["Resources"][function]["Properties"];
        assert_eq!(
            f["Environment"]["Variables"][EXCHANGE_LOG_DAYS.name],
            json!({"Ref": "ExchangeLogDays"}),
            "{function}"
        );
        // The function starts with it: the parameter's default read as the setting.
        let vars = resolved_env(&template, function, &[]);
        let lookup = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        assert_eq!(
            koogallery::exchange::retention(&koogallery::config::Env::from_fn(lookup)).unwrap(),
            Some(chrono::Duration::days(14)),
            "{function}"
        );

        let xlog: Vec<Value> = statements(&template["Resources"][role])
            .into_iter()
            .filter(|s| {
                strings(&s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"])
                    .iter()
                    .any(|k| k.starts_with("XLOG#"))
            })
            .collect();
        assert_eq!(xlog.len(), 1, "{role}: one statement for the exchange log");
        assert_eq!(
            strings(&xlog[0]["Action"]),
            koogallery_aws::dynamo::EXCHANGE_LOG_ACTIONS,
            "{role}"
        );
        assert_eq!(
            xlog[0]["Resource"],
            json!({"Fn::GetAtt": ["Table", "Arn"]}),
            "{role}"
        );
    }
}

/// Every way the admin function could be reachable without IAM or do more than the operator
/// needs, in words: a function URL with `AuthType: AWS_IAM` and the `AdminUrl` output; its role
/// exactly the operator's table actions on the instances ([`operator_iam_actions`]), `Query` on
/// the usage windows, the exchange log read and written ([`OPERATOR_EXCHANGE_LOG_ACTIONS`]), the
/// tenant directory and the SSO session indexes read ([`OPERATOR_DIRECTORY_ACTIONS`],
/// [`OPERATOR_SESSION_ACTIONS`]), a reconciler pass as the reconciler's role allows it, the DLQ received, made visible again and
/// deleted, jobs sent; no secret, nothing on a wildcard resource; and its environment exactly
/// the settings it reads, each in the catalog, which read as settings at the template's defaults.
///
/// [`operator_iam_actions`]: koogallery_aws::dynamo::operator_iam_actions
/// [`OPERATOR_EXCHANGE_LOG_ACTIONS`]: koogallery_aws::dynamo::OPERATOR_EXCHANGE_LOG_ACTIONS
/// [`OPERATOR_DIRECTORY_ACTIONS`]: koogallery_aws::dynamo::OPERATOR_DIRECTORY_ACTIONS
/// [`OPERATOR_SESSION_ACTIONS`]: koogallery_aws::dynamo::OPERATOR_SESSION_ACTIONS
fn admin_problems(template: &Value) -> Vec<String> {
    use koogallery::config::catalog;
    use koogallery_aws::dynamo::{
        EXCHANGE_LOG_LEADING_KEYS, OPERATOR_DIRECTORY_ACTIONS, OPERATOR_EXCHANGE_LOG_ACTIONS,
        OPERATOR_LEADING_KEYS, OPERATOR_SESSION_ACTIONS, OPERATOR_SESSION_LEADING_KEYS,
        keys::{LEGACY_UNSETTLED_INDEX, UNSETTLED_INDEX},
        operator_iam_actions,
    };
    let r = &template["Resources"];
    let mut out = Vec::new();
    let function = &r["AdminFunction"];
    let properties = &function["Properties"];
    if properties["FunctionUrlConfig"]["AuthType"] != "AWS_IAM" {
        out.push(format!(
            "AdminFunction's function URL is not AuthType AWS_IAM: {}",
            properties["FunctionUrlConfig"]
        ));
    }
    if template["Outputs"]["AdminUrl"]["Value"]
        != json!({"Fn::GetAtt": ["AdminFunctionUrl", "FunctionUrl"]})
    {
        out.push("the AdminUrl output is not AdminFunction's function URL".into());
    }
    if properties["Role"] != json!({"Fn::GetAtt": ["AdminRole", "Arn"]}) {
        out.push(format!(
            "AdminFunction does not run as AdminRole: {}",
            properties["Role"]
        ));
    }
    if properties["CodeUri"] != "functions/admin" {
        out.push(format!(
            "AdminFunction is built from {}",
            properties["CodeUri"]
        ));
    }
    let table = json!({"Fn::GetAtt": ["Table", "Arn"]});
    let index = |name: &str| json!({"Fn::Sub": format!("${{Table.Arn}}/index/{name}")});
    let sorted = |v: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = v.iter().map(|s| (*s).to_owned()).collect();
        v.sort();
        v
    };
    // (actions, resource, leading keys), each sorted.
    let mut expected: Vec<(Vec<String>, Value, Vec<String>)> = vec![
        (
            sorted(&["logs:CreateLogStream", "logs:PutLogEvents"]),
            json!({"Fn::GetAtt": ["AdminLogGroup", "Arn"]}),
            vec![],
        ),
        (
            sorted(operator_iam_actions()),
            table.clone(),
            sorted(OPERATOR_LEADING_KEYS),
        ),
        (
            sorted(&["dynamodb:Query"]),
            table.clone(),
            sorted(&["USAGE#*"]),
        ),
        (
            sorted(OPERATOR_EXCHANGE_LOG_ACTIONS),
            table.clone(),
            sorted(EXCHANGE_LOG_LEADING_KEYS),
        ),
        (
            sorted(OPERATOR_DIRECTORY_ACTIONS),
            table.clone(),
            sorted(koogallery_aws::directory::keys::LEADING_KEYS),
        ),
        (
            sorted(OPERATOR_SESSION_ACTIONS),
            table.clone(),
            sorted(OPERATOR_SESSION_LEADING_KEYS),
        ),
        (
            sorted(&["dynamodb:Query"]),
            json!([index(UNSETTLED_INDEX), index(LEGACY_UNSETTLED_INDEX)]),
            vec![],
        ),
        (
            sorted(&["dynamodb:BatchGetItem"]),
            table.clone(),
            sorted(&["INSTANCE#*"]),
        ),
        (
            sorted(&[
                "sqs:ReceiveMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:DeleteMessage",
            ]),
            json!({"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}),
            vec![],
        ),
        (
            sorted(&["sqs:SendMessage"]),
            json!({"Fn::GetAtt": ["JobsQueue", "Arn"]}),
            vec![],
        ),
    ];
    expected.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    let mut granted: Vec<(Vec<String>, Value, Vec<String>)> = statements(&r["AdminRole"])
        .iter()
        .map(|s| {
            let mut actions = strings(&s["Action"]);
            actions.sort();
            let mut keys =
                strings(&s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]);
            keys.sort();
            if s["Effect"] != "Allow" {
                out.push(format!(
                    "AdminRole has a statement that does not Allow: {s}"
                ));
            }
            (actions, s["Resource"].clone(), keys)
        })
        .collect();
    granted.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    for g in &granted {
        if !expected.contains(g) {
            out.push(format!(
                "AdminRole grants {g:?} beyond the operator's needs"
            ));
        }
    }
    for e in &expected {
        if !granted.contains(e) {
            out.push(format!("AdminRole lacks {e:?}"));
        }
    }
    let env = env_names(function);
    let wanted: BTreeSet<String> = [
        &catalog::QUEUE_URL,
        &catalog::DLQ_URL,
        &catalog::EXCHANGE_LOG_DAYS,
        &catalog::WORKER_BACKOFF_MAX_SECS,
    ]
    .iter()
    .map(|s| s.name.to_owned())
    .collect();
    if env != wanted {
        out.push(format!(
            "AdminFunction's environment is {env:?}, not {wanted:?}"
        ));
    }
    for name in &env {
        if !catalog::ALL.iter().any(|s| s.name == name) {
            out.push(format!(
                "AdminFunction's {name} is not a setting (config::catalog)"
            ));
        }
    }
    if env.iter().any(|n| n.ends_with("_SECRET_ID")) {
        out.push("AdminFunction is named a secret".into());
    }
    {
        let vars = resolved_env(template, "AdminFunction", &[]);
        let lookup = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let offline = koogallery::config::OpenApiAccess {
            held: false,
            offline_by_default: true,
        };
        if let Err(e) =
            koogallery::config::Settings::read(&koogallery::config::Env::from_fn(lookup), offline)
        {
            out.push(format!(
                "AdminFunction's environment does not read as settings: {e}"
            ));
        }
    }
    out
}

#[test]
fn the_admin_function_is_behind_iam_and_least_privileged() {
    let found = admin_problems(&load());
    assert!(
        found.is_empty(),
        "template.yaml, the admin function:\n{}",
        found.join("\n")
    );
}

/// Each check of [`admin_problems`] catches the edit that would break it.
#[test]
fn admin_drift_is_reported() {
    let template = load();
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut t = template.clone();
        f(&mut t);
        admin_problems(&t).join("\n")
    };
    let r = |t: &mut Value| {
        t["Resources"]["AdminFunction"]["Properties"]["FunctionUrlConfig"]["AuthType"] =
            json!("NONE");
    };
    assert!(broken(&r).contains("not AuthType AWS_IAM"));
    let r = |t: &mut Value| {
        t["Outputs"].as_object_mut().unwrap().remove("AdminUrl");
    };
    assert!(broken(&r).contains("AdminUrl"));
    // A write to the instances, or the DLQ's messages sent anywhere.
    let r = |t: &mut Value| {
        t["Resources"]["AdminRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][1]
            ["Action"]
            .as_array_mut()
            .unwrap()
            .push(json!("dynamodb:PutItem"));
    };
    let found = broken(&r);
    assert!(found.contains("beyond the operator's needs"), "{found}");
    assert!(found.contains("AdminRole lacks"), "{found}");
    let r = |t: &mut Value| {
        t["Resources"]["AdminRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
            [1]["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"] = json!(["*"]);
    };
    assert!(broken(&r).contains("beyond the operator's needs"));
    let r = |t: &mut Value| {
        t["Resources"]["AdminFunction"]["Properties"]["Environment"]["Variables"]["KOOGALLERY_CALLBACK_KEYS_SECRET_ID"] =
            json!({"Ref": "KeysSecret"});
    };
    let found = broken(&r);
    assert!(found.contains("named a secret"), "{found}");
    let r = |t: &mut Value| {
        t["Resources"]["AdminFunction"]["Properties"]["Environment"]["Variables"]["KOOGALLERY_EXCHANGE_LOG_DAYS"] =
            json!("forever");
    };
    assert!(broken(&r).contains("does not read as settings"));
}
