//! `/admin/cache/*`: the cache inspection API. Bearer token required; without a
//! configured token every admin route answers 401 (never open).

use super::body::read_body;
use super::error::ApiError;
use super::AppState;
use crate::cache::EntryFilter;
use crate::gateway::admin;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

/// The admin guard: an extractor that admits a request only with
/// `Authorization: Bearer <admin.token>` (scheme case-insensitive, token compared in
/// constant time). Without a configured token every guarded route answers 401.
pub struct Admin;

pub(super) fn authorize(req: &HttpRequest) -> Result<Admin, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or(ApiError::Unauthorized("The admin API is not configured."))?;
    let Some(token) = state.gateway.config.admin.token.as_ref() else {
        return Err(ApiError::Unauthorized(
            "The admin API is disabled: set DEJA_ADMIN_TOKEN (or admin.token) to enable it.",
        ));
    };
    let given = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .and_then(|v| {
            // RFC 9110: the scheme is case-insensitive; one or more spaces follow it.
            let (scheme, rest) = v.split_at_checked(6)?;
            (scheme.eq_ignore_ascii_case(b"bearer") && rest.first() == Some(&b' '))
                .then(|| rest.trim_ascii())
        })
        .unwrap_or_default();
    if bool::from(given.ct_eq(token.expose().as_bytes())) {
        Ok(Admin)
    } else {
        Err(ApiError::Unauthorized(
            "Missing or wrong admin bearer token.",
        ))
    }
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Admin, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(authorize(req))
    }
}

async fn json_body<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<T, ApiError> {
    let body = read_body(req, payload, state).await?;
    serde_json::from_slice(&body).map_err(|e| ApiError::BadQuery(format!("Invalid JSON body: {e}")))
}

fn query<T: DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| ApiError::BadQuery(format!("Invalid query string: {e}")))
}

fn entry_id(req: &HttpRequest) -> Result<u64, ApiError> {
    let raw = req.match_info().get("id").unwrap_or("");
    raw.parse()
        .map_err(|_| ApiError::BadQuery(format!("Entry ids are numbers, got `{raw}`.")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    model: Option<String>,
    namespace: Option<String>,
    text: Option<String>,
    partition: Option<String>,
    after: Option<u64>,
    limit: Option<usize>,
}

pub async fn stats(_: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(admin::stats(&state.gateway)?))
}

pub async fn list(
    _: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: ListQuery = query(&req)?;
    let filter = EntryFilter {
        model: q.model,
        namespace: q.namespace,
        partition: q.partition,
        text: q.text,
    };
    let page = admin::list(&state.gateway, &filter, q.after, q.limit.unwrap_or(50))?;
    Ok(HttpResponse::Ok().json(page))
}

pub async fn get(
    _: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(admin::get(&state.gateway, entry_id(&req)?)?))
}

pub async fn delete(
    _: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = entry_id(&req)?;
    admin::delete(&state.gateway, id).await?;
    Ok(HttpResponse::Ok().json(json!({"deleted": id.to_string()})))
}

pub async fn delete_all(
    _: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    // EntryFilter is itself the query shape (unknown keys refused).
    let filter: EntryFilter = query(&req)?;
    let n = admin::delete_where(&state.gateway, filter).await?;
    Ok(HttpResponse::Ok().json(json!({"deleted": n})))
}

pub async fn search(
    _: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = json_body(&req, payload, &state).await?;
    Ok(HttpResponse::Ok().json(admin::search(&state.gateway, body).await?))
}

pub async fn insert(
    _: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = json_body(&req, payload, &state).await?;
    Ok(HttpResponse::Ok().json(admin::insert(&state.gateway, body).await?))
}

pub async fn export(_: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let rx = admin::export(&state.gateway)?;
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(stream))
}
