// Entry point: layout, routes, realtime connection.

import "./styles.css";
import type { ComponentChildren } from "preact";
import { render } from "preact";
import { useEffect, useRef } from "preact/hooks";
import { CompetitionPage } from "./pages/competition";
import { EpisodePage } from "./pages/episode";
import { JobPage, JobsPage } from "./pages/jobs";
import { OverviewPage } from "./pages/overview";
import { SubmissionPage, SubmissionsPage } from "./pages/submission";
import { ValidatorsPage } from "./pages/validators";
import { startRealtime } from "./realtime";
import { installLinkInterception, match, type Params, useLocation } from "./router";
import { type Connection, useStore } from "./store";

interface Route {
  pattern: string;
  title: (p: Params) => string;
  view: (p: Params) => ComponentChildren;
}

const ROUTES: Route[] = [
  { pattern: "/", title: () => "Overview", view: () => <OverviewPage /> },
  {
    pattern: "/competitions/:id",
    title: (p) => `Competition ${p.id}`,
    view: (p) => <CompetitionPage id={p.id} />,
  },
  { pattern: "/jobs", title: () => "Jobs", view: () => <JobsPage /> },
  { pattern: "/jobs/:id", title: (p) => `Job ${p.id}`, view: (p) => <JobPage id={p.id} /> },
  { pattern: "/submissions", title: () => "Submissions", view: () => <SubmissionsPage /> },
  {
    pattern: "/submissions/:id",
    title: (p) => `Submission #${p.id}`,
    view: (p) => <SubmissionPage id={p.id} />,
  },
  {
    pattern: "/episodes/:id",
    title: (p) => `Episode ${p.id}`,
    view: (p) => <EpisodePage id={p.id} />,
  },
  { pattern: "/validators", title: () => "Validators & weights", view: () => <ValidatorsPage /> },
];

const NAV: [string, string][] = [
  ["/", "Overview"],
  ["/jobs", "Jobs"],
  ["/submissions", "Submissions"],
  ["/validators", "Validators & weights"],
];

const CONNECTION_TEXT: Record<Connection, string> = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};

function ConnectionStatus() {
  const { connection } = useStore();
  return (
    <p class={`conn conn-${connection}`} role="status" data-testid="connection">
      <span class="dot" aria-hidden="true" />
      {CONNECTION_TEXT[connection]}
    </p>
  );
}

/** Marks (for tests and the curious) when the first snapshot reached the screen. */
function useFirstViewMark(): void {
  const { snapshotLoaded } = useStore();
  useEffect(() => {
    if (snapshotLoaded && performance.getEntriesByName("kinitro:first-view").length === 0) {
      performance.mark("kinitro:first-view");
    }
  }, [snapshotLoaded]);
}

function App() {
  const loc = useLocation();
  useFirstViewMark();
  const mainRef = useRef<HTMLElement>(null);
  const first = useRef(true);

  let view: ComponentChildren = <NotFound />;
  let title = "Not found";
  for (const r of ROUTES) {
    const params = match(r.pattern, loc.path);
    if (params) {
      view = r.view(params);
      title = r.title(params);
      break;
    }
  }

  useEffect(() => {
    document.title = `${title} · Kinitro`;
    // Move focus to the new page's heading after client-side navigation (not on load).
    if (first.current) {
      first.current = false;
      return;
    }
    mainRef.current?.querySelector<HTMLElement>("h1")?.focus();
  }, [loc.path]);

  const section = `/${loc.path.split("/")[1] ?? ""}`;
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <a class="brand" href="/">
          <span class="logo" aria-hidden="true">
            K
          </span>
          Kinitro
        </a>
        <nav aria-label="Main">
          <ul>
            {NAV.map(([href, label]) => {
              const active =
                href === "/" ? loc.path === "/" : section === href || loc.path.startsWith(`${href}/`);
              return (
                <li key={href}>
                  <a href={href} aria-current={active ? "page" : undefined}>
                    {label}
                  </a>
                </li>
              );
            })}
          </ul>
        </nav>
        <ConnectionStatus />
      </header>
      <main id="main" ref={mainRef} tabIndex={-1}>
        {view}
      </main>
      <footer class="footer">
        <p>
          Kinitro · evaluations of embodied-AI agents on Meta-World · <a href="/docs">REST API</a>
        </p>
      </footer>
    </>
  );
}

function NotFound() {
  return (
    <section>
      <h1 tabIndex={-1}>Page not found</h1>
      <p>
        Nothing lives at this address. Go back to the <a href="/">overview</a>.
      </p>
    </section>
  );
}

installLinkInterception();
startRealtime();
const root = document.getElementById("app");
if (root) {
  root.replaceChildren();
  render(<App />, root);
}
