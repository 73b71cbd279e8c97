//! `/admin/cache/*`: the cache inspection API. Bearer token required; without a
//! configured token every admin route answers 401 (never open).

use super::body::read_limited;
use super::error::ApiError;
use super::AppState;
use crate::cache::EntryFilter;
use crate::gateway::admin;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

fn authorize(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let Some(token) = state.gateway.config.admin.token.as_ref() else {
        return Err(ApiError::Unauthorized(
            "The admin API is disabled: set DEJA_ADMIN_TOKEN (or admin.token) to enable it.",
        ));
    };
    let given = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Compare without an early exit on the first differing byte.
    let (a, b) = (given.as_bytes(), token.expose().as_bytes());
    let diff = a
        .iter()
        .zip(b)
        .fold(a.len() ^ b.len(), |d, (x, y)| d | usize::from(x ^ y));
    if diff == 0 {
        Ok(())
    } else {
        Err(ApiError::Unauthorized(
            "Missing or wrong admin bearer token.",
        ))
    }
}

async fn json_body<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<T, ApiError> {
    let body = read_limited(req, payload, state.gateway.config.server.max_body_bytes).await?;
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

pub async fn stats(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    Ok(HttpResponse::Ok().json(admin::stats(&state.gateway)?))
}

pub async fn list(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
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

pub async fn get(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    Ok(HttpResponse::Ok().json(admin::get(&state.gateway, entry_id(&req)?)?))
}

pub async fn delete(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let id = entry_id(&req)?;
    admin::delete(&state.gateway, id).await?;
    Ok(HttpResponse::Ok().json(json!({"deleted": id.to_string()})))
}

pub async fn delete_all(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    // EntryFilter is itself the query shape (unknown keys refused).
    let filter: EntryFilter = query(&req)?;
    let n = admin::delete_where(&state.gateway, filter).await?;
    Ok(HttpResponse::Ok().json(json!({"deleted": n})))
}

pub async fn search(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let body = json_body(&req, payload, &state).await?;
    Ok(HttpResponse::Ok().json(admin::search(&state.gateway, body).await?))
}

pub async fn insert(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let body = json_body(&req, payload, &state).await?;
    Ok(HttpResponse::Ok().json(admin::insert(&state.gateway, body).await?))
}

pub async fn export(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
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
