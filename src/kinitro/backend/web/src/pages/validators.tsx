// Validators (connected, last seen, throughput) and weights (latest + history chart).

import { useEffect } from "preact/hooks";
import { useResource } from "../api";
import { LineChart } from "../chart";
import { Async, Badge, Empty, HotkeyText, TimeAgo, useNow } from "../components";
import { DASH, dateTime, int, pct, shortId } from "../format";
import type * as api from "../generated/api";
import { type WeightsView, toWeights } from "../model";
import { ThroughputChart } from "../history";
import { mergeValidators, throughputPerMinute, useStore } from "../store";

export function ValidatorsPage() {
  const s = useStore();
  const now = useNow();
  const validatorsKey = s.touched.get("validators");
  const fresh = useResource(
    "validators?limit=500",
    (raw: api.Validator[]) => raw,
    validatorsKey,
    2000,
  );
  useEffect(() => {
    if (fresh.data !== undefined) mergeValidators(fresh.data);
  }, [fresh.data]);
  const history = useResource(
    "weights?limit=200",
    (raw: api.Page_WeightSet) =>
      raw.items.map(toWeights).filter((w): w is WeightsView => w !== undefined),
    s.touched.get("weights"),
  );
  const validators = [...s.validators.values()].sort(
    (a, b) => Number(b.connected) - Number(a.connected) || (a.uid ?? 1e9) - (b.uid ?? 1e9),
  );
  return (
    <>
      <h1 tabIndex={-1}>Validators &amp; weights</h1>
      <section aria-labelledby="val-h">
        <h2 id="val-h">Validators</h2>
        {validators.length === 0 ? (
          <Empty>No validator has connected yet.</Empty>
        ) : (
          <div class="table-wrap">
            <table data-testid="validators">
              <caption class="sr-only">Validators, connected first</caption>
              <thead>
                <tr>
                  <th scope="col">Validator</th>
                  <th scope="col" class="num">
                    UID
                  </th>
                  <th scope="col">Status</th>
                  <th scope="col">Last seen</th>
                  <th scope="col" class="num">
                    Jobs done
                  </th>
                  <th scope="col" class="num">
                    In flight
                  </th>
                  <th scope="col" class="num">
                    Episodes / min (live)
                  </th>
                  <th scope="col" class="num" title="Refused reports and failed audits">
                    Strikes
                  </th>
                  <th scope="col" class="num" title="Audited episodes whose replay matched">
                    Audits passed
                  </th>
                  <th scope="col" class="num" title="Mean distance of its success rates from the quorum median">
                    Disagreement
                  </th>
                  <th scope="col">Version</th>
                </tr>
              </thead>
              <tbody>
                {validators.map((v) => (
                  <tr key={v.hotkey} data-validator={v.hotkey}>
                    <td>
                      <HotkeyText hotkey={v.hotkey} />
                    </td>
                    <td class="num">{v.uid ?? DASH}</td>
                    <td>
                      <span class="badges">
                        <Badge state={v.connected ? "connected" : "disconnected"} />
                        {v.suspendedUntil && (
                          <Badge state="failed" label="suspended" title={`Left out of quorums until ${dateTime(v.suspendedUntil)}`} />
                        )}
                      </span>
                    </td>
                    <td>
                      <TimeAgo at={v.lastSeenAt} now={now} />
                    </td>
                    <td class="num">{int(v.jobsDone)}</td>
                    <td class="num">{int(v.jobsInFlight)}</td>
                    <td class="num" title="Episodes completed in the last 10 minutes, seen live by this page">
                      {throughputPerMinute(v, now).toFixed(1)}
                    </td>
                    <td class="num" data-testid="strikes">{int(v.strikes)}</td>
                    <td class="num">
                      {v.auditPassRate === undefined ? DASH : `${pct(v.auditPassRate)} of ${int((v.auditsPassed ?? 0) + (v.auditsFailed ?? 0))}`}
                    </td>
                    <td class="num">{v.disagreement === undefined ? DASH : pct(v.disagreement)}</td>
                    <td>{v.version ?? DASH}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
      <section aria-labelledby="tp-h">
        <h2 id="tp-h">Throughput over time</h2>
        <ThroughputChart liveKey={s.touched.get("jobs")} />
      </section>
      <section aria-labelledby="w-h">
        <h2 id="w-h">Weights</h2>
        <LatestWeights w={s.weights ?? history.data?.[0]} />
        <Async res={history} what="the weights history">
          {(list) => <WeightsHistory list={s.weights && list[0]?.weightsId !== s.weights.weightsId ? [s.weights, ...list] : list} />}
        </Async>
      </section>
    </>
  );
}

function LatestWeights(props: { w?: WeightsView }) {
  const w = props.w;
  if (!w) return <Empty>No weights computed yet.</Empty>;
  const rows = [...w.weights.entries()].sort((a, b) => b[1] - a[1]);
  return (
    <div class="card">
      <h3>
        Latest weights <span class="muted mono">{shortId(w.weightsId)}</span>
      </h3>
      <p class="muted">
        Computed {dateTime(w.computedAt)}
        {w.netuid !== undefined && ` · netuid ${w.netuid}`}
      </p>
      <ul class="bars" data-testid="latest-weights">
        {rows.map(([uid, value]) => (
          <li key={uid}>
            <span class="bar-label">uid {uid}</span>
            <span class="bar-track" aria-hidden="true">
              <span class="bar-fill" style={{ width: `${value * 100}%` }} />
            </span>
            <span class="bar-value">{(value * 100).toFixed(1)}%</span>
          </li>
        ))}
      </ul>
    </div>
  );
}

function WeightsHistory(props: { list: WeightsView[] }) {
  const list = [...props.list]
    .filter((w) => w.computedAt !== undefined)
    .sort((a, b) => Date.parse(a.computedAt ?? "") - Date.parse(b.computedAt ?? ""));
  if (list.length === 0) return null;
  const uids = [...new Set(list.flatMap((w) => [...w.weights.keys()]))].sort((a, b) => a - b);
  const x = list.map((w) => Date.parse(w.computedAt ?? "") / 1000);
  const ys = uids.map((uid) => list.map((w) => w.weights.get(uid) ?? 0));
  // The latest set holds until now: extend every step to the present.
  const now = Date.now() / 1000;
  if (now > x[x.length - 1]) {
    x.push(now);
    for (const y of ys) y.push(y[y.length - 1]);
  }
  return (
    <LineChart
      title="Weights history"
      description={`Weight of each of ${uids.length} uids across ${list.length} weight sets.`}
      x={x}
      series={uids.map((u) => ({ label: `uid ${u}`, points: list.length < 30, stepped: true }))}
      ys={ys}
      xLabel="time"
      yLabel="weight"
      time
      yRange={[0, 1]}
      testId="weights-chart"
    />
  );
}
