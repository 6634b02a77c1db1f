use std::sync::Mutex;

use koogallery::{
    clock::Clock,
    config::Config,
    instance::{CreateOutcome, InstanceStore},
    jobs::Job,
    order::offline::OfflineMarketplace,
    testing::{Scripted, ScriptedProvisioner, TestBed},
};

use super::*;

struct Bed {
    bed: TestBed,
    worker: Worker,
    provisioner: Arc<ScriptedProvisioner>,
}

fn bed(script: Vec<Scripted>, max_attempts: u32) -> Bed {
    let bed = TestBed::new(Config::with_keys("k", "kk"));
    let provisioner = Arc::new(ScriptedProvisioner::new(script));
    let worker = Worker {
        store: bed.store.clone(),
        provisioner: provisioner.clone(),
        marketplace: Arc::new(OfflineMarketplace::new(bed.clock.clone())),
        clock: bed.clock.clone(),
        config: WorkerSettings {
            max_attempts,
            ..WorkerSettings::default()
        },
        credential_encryption: None,
    };
    Bed {
        bed,
        worker,
        provisioner,
    }
}

async fn order(b: &Bed, id: &str) {
    let (i, ev) = Instance::new_provisioning(
        &format!("CS-{id}"),
        &format!("CS-{id}-000001"),
        id,
        false,
        b.bed.clock.now(),
    );
    assert_eq!(
        b.bed.store.create_for_order_line(&i, &[ev]).await.unwrap(),
        CreateOutcome::Created
    );
}

fn delivery(id: &str, attempt: u32) -> JobDelivery {
    JobDelivery {
        job: Job::Provision {
            instance_id: id.into(),
        },
        attempt,
        delivery_id: format!("msg-{id}"),
    }
}

#[tokio::test]
async fn provisioning_activates_with_order_details_and_history() {
    let b = bed(vec![], 3);
    order(&b, "i1").await;
    let d = delivery("i1", 1);
    let r = b.worker.process(&d).await;
    assert_eq!(r.as_ref().unwrap(), &JobOutcome::Provisioned);
    assert_eq!(b.worker.disposition(&d, &r), Disposition::Ack);
    let i = b.bed.store.get_instance("i1").await;
    assert_eq!(i.state, InstanceState::Active);
    assert!(i.order.as_ref().unwrap().offline);
    assert!(i.expire_time.is_some(), "expiry comes from the order");
    assert!(i.provisioning.claim.is_none());
    let kinds: Vec<&str> = b
        .bed
        .store
        .events("i1")
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind.name())
        .collect();
    assert_eq!(kinds, ["created", "provisioning_started", "provisioned"]);
}

#[tokio::test]
async fn a_redelivered_job_does_not_provision_twice() {
    let b = bed(vec![], 3);
    order(&b, "i1").await;
    b.worker.process(&delivery("i1", 1)).await.unwrap();
    let again = JobDelivery {
        delivery_id: "another-message".into(),
        ..delivery("i1", 1)
    };
    assert_eq!(
        b.worker.process(&again).await.unwrap(),
        JobOutcome::AlreadyDone
    );
    assert_eq!(b.provisioner.provision_calls(), 1);
}

#[tokio::test]
async fn a_second_delivery_waits_while_another_holds_the_claim() {
    let b = bed(vec![], 3);
    order(&b, "i1").await;
    let now = b.bed.clock.now();
    mutate(b.bed.store.as_ref(), "i1", |i| {
        claim(i, "first", now, chrono::Duration::minutes(2))
    })
    .await
    .unwrap();
    let other = JobDelivery {
        delivery_id: "second".into(),
        ..delivery("i1", 1)
    };
    let r = b.worker.process(&other).await;
    assert!(r.as_ref().is_err_and(JobError::is_retryable), "{r:?}");
    assert_eq!(b.provisioner.provision_calls(), 0);
    // Once the claim expires (the first delivery crashed), the other takes over.
    b.bed.clock.advance(chrono::Duration::minutes(3));
    assert_eq!(
        b.worker.process(&other).await.unwrap(),
        JobOutcome::Provisioned
    );
}

#[tokio::test]
async fn transient_failures_back_off_then_the_last_attempt_fails_the_instance_and_dead_letters() {
    let b = bed(
        vec![
            Scripted::Transient,
            Scripted::Transient,
            Scripted::Transient,
        ],
        3,
    );
    order(&b, "i1").await;
    let d1 = delivery("i1", 1);
    let r1 = b.worker.process(&d1).await;
    assert_eq!(
        b.worker.disposition(&d1, &r1),
        Disposition::RetryAfter(Duration::from_secs(2))
    );
    let d2 = delivery("i1", 2);
    let r2 = b.worker.process(&d2).await;
    assert_eq!(
        b.worker.disposition(&d2, &r2),
        Disposition::RetryAfter(Duration::from_secs(4))
    );
    assert_eq!(
        b.bed.store.get_instance("i1").await.state,
        InstanceState::Provisioning
    );
    let d3 = delivery("i1", 3);
    let r3 = b.worker.process(&d3).await;
    assert!(matches!(
        b.worker.disposition(&d3, &r3),
        Disposition::DeadLetter(_)
    ));
    let i = b.bed.store.get_instance("i1").await;
    assert_eq!(i.state, InstanceState::Failed);
    assert_eq!(i.failure.unwrap().code, ResultCode::InternalError);
    assert_eq!(i.provisioning.attempts, 3);
}

#[tokio::test]
async fn a_vendor_refusal_fails_the_instance_with_its_code_without_retry() {
    let b = bed(vec![Scripted::Reject(ResultCode::SoldOut)], 3);
    order(&b, "i1").await;
    let d = delivery("i1", 1);
    let r = b.worker.process(&d).await;
    assert_eq!(
        r.as_ref().unwrap(),
        &JobOutcome::ProvisioningRefused(ResultCode::SoldOut)
    );
    assert_eq!(b.worker.disposition(&d, &r), Disposition::Ack);
    let i = b.bed.store.get_instance("i1").await;
    assert_eq!(
        (i.state, i.failure.unwrap().code),
        (InstanceState::Failed, ResultCode::SoldOut)
    );
}

#[tokio::test]
async fn unknown_instance_is_a_permanent_error() {
    let b = bed(vec![], 3);
    let d = delivery("ghost", 1);
    let r = b.worker.process(&d).await;
    assert!(matches!(
        b.worker.disposition(&d, &r),
        Disposition::DeadLetter(_)
    ));
}

#[tokio::test]
async fn lifecycle_notices_are_delivered_once_and_leave_the_outbox() {
    let b = bed(vec![], 3);
    order(&b, "i1").await;
    b.worker.process(&delivery("i1", 1)).await.unwrap();
    let now = b.bed.clock.now();
    mutate(b.bed.store.as_ref(), "i1", |i| {
        i.upgrade("UP1", "UP1-000001", now)
    })
    .await
    .unwrap();
    let seq = *b
        .bed
        .store
        .get_instance("i1")
        .await
        .pending_notices
        .iter()
        .next()
        .unwrap();
    let d = JobDelivery {
        job: Job::Notify {
            instance_id: "i1".into(),
            seq,
        },
        attempt: 1,
        delivery_id: "n".into(),
    };
    assert_eq!(b.worker.process(&d).await.unwrap(), JobOutcome::Notified);
    assert_eq!(b.worker.process(&d).await.unwrap(), JobOutcome::AlreadyDone);
    let kinds: Vec<&str> = b
        .provisioner
        .notices
        .lock()
        .unwrap()
        .iter()
        .map(|n| n.event.kind.name())
        .collect();
    assert_eq!(kinds, ["upgraded"]);
    assert!(
        b.bed
            .store
            .get_instance("i1")
            .await
            .pending_notices
            .is_empty()
    );
}

#[tokio::test]
async fn static_provisioner_fills_templates_and_generates_strong_passwords() {
    let p = provisioners::StaticProvisioner {
        front_end_url: "https://app.example.com/t/{instanceId}".into(),
        admin_url: Some("https://admin.example.com/{instanceId}".into()),
        admin_user: "owner".into(),
    };
    let req = ProvisionRequest {
        instance_id: "abc".into(),
        order_id: "o".into(),
        order_line_id: "l".into(),
        order: Default::default(),
    };
    let a = p.provision(&req).await.unwrap();
    let b = p.provision(&req).await.unwrap();
    assert_eq!(a.front_end_url, "https://app.example.com/t/abc");
    assert_eq!(
        a.admin_url.as_deref(),
        Some("https://admin.example.com/abc")
    );
    assert_eq!(a.user_name.as_deref(), Some("owner"));
    let pw = a.password.unwrap();
    assert_eq!(pw.len(), provisioners::PASSWORD_LEN);
    assert!(
        pw.chars().any(|c| c.is_ascii_uppercase()) && pw.chars().any(|c| c.is_ascii_lowercase())
    );
    assert!(
        pw.chars().any(|c| c.is_ascii_digit()) && pw.chars().any(|c| !c.is_ascii_alphanumeric())
    );
    assert_ne!(Some(pw), b.password, "every instance gets its own password");
}

mod webhook {
    use super::*;
    use axum::{Router, body::Bytes, http::HeaderMap, http::StatusCode, routing::post};
    use koogallery::security::{
        SecretKey,
        webhook::{HEADER_SIGNATURE, HEADER_TIMESTAMP, webhook_signature},
    };
    use provisioners::WebhookProvisioner;

    /// A vendor endpoint answering from a script of (status, body); records verified events.
    async fn vendor(
        script: Vec<(u16, &'static str)>,
    ) -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
        let script = Arc::new(Mutex::new(
            script
                .into_iter()
                .collect::<std::collections::VecDeque<_>>(),
        ));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let app = Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: Bytes| {
                let script = script.clone();
                let seen = seen2.clone();
                async move {
                    let ts = headers[HEADER_TIMESTAMP].to_str().unwrap().to_owned();
                    let sig = headers[HEADER_SIGNATURE].to_str().unwrap().to_owned();
                    assert_eq!(
                        sig,
                        webhook_signature("hook-secret", &ts, &body),
                        "events are signed"
                    );
                    seen.lock()
                        .unwrap()
                        .push(serde_json::from_slice(&body).unwrap());
                    let (status, answer) =
                        script.lock().unwrap().pop_front().unwrap_or((200, "{}"));
                    (StatusCode::from_u16(status).unwrap(), answer)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, seen)
    }

    fn provisioner(url: String) -> WebhookProvisioner {
        let mut p =
            WebhookProvisioner::new(url, SecretKey::new("hook-secret"), Duration::from_secs(5))
                .unwrap();
        p.first_backoff = Duration::from_millis(1);
        p
    }

    fn request() -> ProvisionRequest {
        ProvisionRequest {
            instance_id: "i9".into(),
            order_id: "o".into(),
            order_line_id: "l".into(),
            order: Default::default(),
        }
    }

    #[tokio::test]
    async fn credentials_come_from_the_answer_after_retrying_a_5xx() {
        let (url, seen) = vendor(vec![
            (503, "busy"),
            (
                200,
                r#"{"frontEndUrl":"https://v/i9","userName":"root","password":"pw-1"}"#,
            ),
        ])
        .await;
        let app = provisioner(url).provision(&request()).await.unwrap();
        assert_eq!(
            (app.front_end_url.as_str(), app.password.as_deref()),
            ("https://v/i9", Some("pw-1"))
        );
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[1]["event"], "provision");
        assert_eq!(seen[1]["eventId"], "i9:provision");
    }

    #[tokio::test]
    async fn a_result_code_or_a_4xx_is_a_refusal_with_that_code() {
        let (url, _) = vendor(vec![(
            200,
            r#"{"resultCode":"000106","resultMsg":"sold out"}"#,
        )])
        .await;
        match provisioner(url).provision(&request()).await {
            Err(ProvisionError::Rejected { code, message }) => {
                assert_eq!((code, message.as_str()), (ResultCode::SoldOut, "sold out"))
            }
            other => panic!("{other:?}"),
        }
        let (url, _) = vendor(vec![(409, "conflict")]).await;
        assert!(matches!(
            provisioner(url).provision(&request()).await,
            Err(ProvisionError::Rejected {
                code: ResultCode::InternalError,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn persistent_outage_is_transient_and_unreachable_too() {
        let (url, seen) = vendor(vec![(500, ""), (502, ""), (504, "")]).await;
        assert!(matches!(
            provisioner(url).provision(&request()).await,
            Err(ProvisionError::Transient(_))
        ));
        assert_eq!(seen.lock().unwrap().len(), 3);
        let p = provisioner("http://127.0.0.1:9/hook".into());
        assert!(matches!(
            p.provision(&request()).await,
            Err(ProvisionError::Transient(_))
        ));
    }
}

/// Releases the instance while "provisioning" it, as KooGallery would if the buyer unsubscribed at once.
struct ReleasedMidway {
    store: Arc<dyn InstanceStore>,
    notices: Mutex<Vec<LifecycleNotice>>,
}

#[async_trait::async_trait]
impl Provisioner for ReleasedMidway {
    async fn provision(
        &self,
        request: &ProvisionRequest,
    ) -> Result<koogallery::instance::AccessInfo, ProvisionError> {
        mutate(self.store.as_ref(), &request.instance_id, |i| {
            Ok(i.release(None, chrono::Utc::now()))
        })
        .await
        .expect("release during provisioning");
        Ok(koogallery::testing::sample_access(&request.instance_id))
    }

    async fn notify(&self, notice: &LifecycleNotice) -> Result<(), ProvisionError> {
        self.notices.lock().unwrap().push(notice.clone());
        Ok(())
    }
}

#[tokio::test]
async fn resources_created_for_an_instance_released_meanwhile_are_released_too() {
    let b = bed(vec![], 3);
    order(&b, "i1").await;
    let provisioner = Arc::new(ReleasedMidway {
        store: b.bed.store.clone(),
        notices: Mutex::default(),
    });
    let worker = Worker {
        provisioner: provisioner.clone(),
        ..b.worker
    };
    let d = delivery("i1", 1);
    let r = worker.process(&d).await;
    assert_eq!(r.as_ref().unwrap(), &JobOutcome::AlreadyDone);
    assert_eq!(worker.disposition(&d, &r), Disposition::Ack);
    assert_eq!(
        b.bed.store.get_instance("i1").await.state,
        InstanceState::Released,
        "never activated"
    );
    let notices = provisioner.notices.lock().unwrap().clone();
    assert_eq!(notices.len(), 1, "the vendor hears about the release");
    assert_eq!(notices[0].event.kind.name(), "released");
    assert!(
        notices[0].instance.access.is_some(),
        "with the access information it just created"
    );
}

/// A vendor whose answer carries a 100-character password.
struct LongPassword;

#[async_trait::async_trait]
impl Provisioner for LongPassword {
    async fn provision(
        &self,
        request: &ProvisionRequest,
    ) -> Result<koogallery::instance::AccessInfo, ProvisionError> {
        Ok(koogallery::instance::AccessInfo {
            password: Some("p".repeat(100)),
            ..koogallery::testing::sample_access(&request.instance_id)
        })
    }

    async fn notify(&self, _notice: &LifecycleNotice) -> Result<(), ProvisionError> {
        Ok(())
    }
}

/// Issue 7, defect 8: an appInfo KooGallery cannot take refuses the order at provisioning time,
/// with a clear message, instead of being stored and failing every queryInstance poll.
#[tokio::test]
async fn an_app_info_over_koogallerys_limits_refuses_the_order_when_the_vendor_answers() {
    use koogallery::security::credential_cipher::EncryptType;
    for (encryption, refused) in [(None, false), (Some(EncryptType::Aes256), true)] {
        let b = bed(vec![], 3);
        order(&b, "long-1").await;
        let worker = Worker {
            provisioner: Arc::new(LongPassword),
            ..b.worker
        }
        .with_credential_encryption(encryption);
        let outcome = worker.process(&delivery("long-1", 1)).await.unwrap();
        let stored = b.bed.store.get_instance("long-1").await;
        if refused {
            assert_eq!(
                outcome,
                JobOutcome::ProvisioningRefused(koogallery::ResultCode::InternalError)
            );
            assert_eq!(stored.state, InstanceState::Failed);
            let message = stored.failure.unwrap().message;
            assert!(
                message.contains("password") && message.contains("128"),
                "{message}"
            );
        } else {
            assert_eq!(outcome, JobOutcome::Provisioned, "100 plain characters fit");
            assert_eq!(stored.state, InstanceState::Active);
        }
    }
}
