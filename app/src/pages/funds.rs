use std::collections::BTreeMap;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use runboard_model::Money;
use rust_decimal::Decimal;

use crate::components::download_csv::{DownloadCsv, csv_href};
use crate::components::live_read::{ReadAt, asked_live, refresh_shared};
use crate::components::refresh::{Freshness, auto_refresh};
use crate::components::table_wrap::TableWrap;
use crate::format::{amount, thousands, url_encode};
use crate::server_fns::ScreenError;
use crate::server_fns::read_funds::{FundsView, SagasBehind, read_funds};

/// Money held by failed and stuck sagas, per currency and service, and the sagas holding it.
#[component]
pub fn Funds() -> impl IntoView {
    let live = asked_live();
    let funds = Resource::new(move || live.get(), read_funds);
    let elapsed = auto_refresh(refresh_shared(move || funds.refetch()));
    view! {
        <Title text="Funds" />
        <h1>"Withheld funds"</h1>
        <Freshness elapsed />
        <div class="list-head">
            <p class="muted">"Money held by failed and stuck sagas, as each service's own query reports it."</p>
            <DownloadCsv href=csv_href("/api/v1/funds", []) what="withheld funds per service and currency" />
        </div>
        <Transition fallback=|| view! { <p class="loading" role="status">"Loading funds…"</p> }>
            {move || Suspend::new(async move {
                let view = funds.await?;
                Ok::<_, ScreenError>(view! { <FundsReport view /> })
            })}
        </Transition>
    }
}

#[component]
fn FundsReport(view: FundsView) -> impl IntoView {
    let FundsView {
        read_at,
        services,
        behind,
    } = view;
    // currency → service → amount
    let mut by_currency: BTreeMap<String, Vec<(String, Decimal)>> = BTreeMap::new();
    for service in &services {
        for money in &service.withheld_funds {
            by_currency
                .entry(money.currency.clone())
                .or_default()
                .push((service.service.to_string(), money.amount));
        }
    }
    if by_currency.is_empty() {
        return view! { <p class="panel empty">"No money is withheld: no failed or stuck saga holds any."</p> }.into_any();
    }
    view! {
        {by_currency
            .into_iter()
            .map(|(currency, rows)| {
                let total: Decimal = rows.iter().map(|(_, a)| *a).sum();
                let alt = format!(
                    "Bar chart of withheld {currency} per service: {}.",
                    rows.iter().map(|(s, a)| format!("{s} {} {currency}", amount(a))).collect::<Vec<_>>().join(", ")
                );
                let chart = format!("/charts/funds/{}/by-service.svg", url_encode(&currency));
                view! {
                    <section class="currency">
                        <h2>{currency.clone()}": "{amount(&total)}" withheld"</h2>
                        <div class="funds-row">
                            <TableWrap>
                                <table class="funds-table">
                                    <thead><tr><th scope="col">"Service"</th><th scope="col" class="num">{format!("Withheld ({currency})")}</th></tr></thead>
                                    <tbody>
                                        {rows.into_iter().map(|(service, value)| view! {
                                            <tr><th scope="row">{service}</th><td class="num">{amount(&value)}</td></tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            </TableWrap>
                            <figure class="chart"><img src=chart alt=alt width="480" height="240" /></figure>
                        </div>
                    </section>
                }
            })
            .collect_view()}
        {behind.into_iter().map(|b| view! { <Behind behind=b now=read_at /> }).collect_view()}
    }
    .into_any()
}

#[component]
fn Behind(behind: SagasBehind, now: chrono::DateTime<chrono::Utc>) -> impl IntoView {
    let SagasBehind {
        service,
        sagas,
        total,
        read_at,
    } = behind;
    let href = format!("/services/{}", url_encode(&service));
    // Every saga holding money, not the largest few shown.
    let csv = csv_href(
        &format!("/api/v1/services/{}/funds", url_encode(&service)),
        [],
    );
    let anchor = service.clone();
    let body = match sagas {
        Err(e) => {
            view! { <p class="panel panel-error" role="alert">"⚠ Could not read them: "{e}</p> }
                .into_any()
        }
        Ok(sagas) if sagas.is_empty() => view! { <p class="muted">"None."</p> }.into_any(),
        Ok(sagas) => {
            let shown = sagas.len();
            view! {
                <TableWrap>
                    <table class="funds-sagas">
                        <caption>{format!("The {shown} largest of {} sagas holding money", thousands(total as u64))}</caption>
                        <thead><tr><th scope="col">"Saga"</th><th scope="col" class="num">"Holds"</th></tr></thead>
                        <tbody>
                            {sagas.into_iter().map(|(saga, money): (String, Money)| view! {
                                <tr><th scope="row" class="mono">{saga}</th><td class="num">{amount(&money.amount)}" "{money.currency}</td></tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                </TableWrap>
            }
            .into_any()
        }
    };
    view! {
        // The anchor a money-held alert links to.
        <section class="behind" id=anchor>
            <h2>"Sagas behind them in "<A href=href>{service.clone()}</A></h2>
            <div class="list-head">
                <ReadAt read_at now />
                <DownloadCsv href=csv what="every saga holding money here" />
            </div>
            {body}
        </section>
    }
}
