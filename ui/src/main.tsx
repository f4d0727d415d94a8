import { type JSX, render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError, api, type Me, setSession, whenSignedOut } from "./api";
import { Loading } from "./components/common";
import { Icon } from "./components/icons";
import { AccountPage } from "./pages/account";
import { Activity } from "./pages/activity";
import { AuditPage } from "./pages/audit";
import { Browse } from "./pages/browse";
import { FleetPage } from "./pages/fleet";
import { History } from "./pages/history";
import { Integrity } from "./pages/integrity";
import { Login } from "./pages/login";
import { Overview } from "./pages/overview";
import { Policies } from "./pages/policies";
import { RestorePage } from "./pages/restore";
import { href, useRoute } from "./router";
import "./style.css";

const NAV: [string, string][] = [
  ["overview", "Overview"],
  ["activity", "Activity"],
  ["history", "History"],
  ["browse", "Browse"],
  ["restore", "Restore"],
  ["integrity", "Integrity"],
  ["policies", "Policies"],
];

function App() {
  const [me, setMe] = useState<Me | null | undefined>(undefined);
  const route = useRoute();
  useEffect(() => {
    whenSignedOut(() => {
      setSession(null);
      setMe(null);
    });
    api<Me>("/api/session").then(
      (m) => {
        setSession(m);
        setMe(m);
      },
      (e) => {
        if (e instanceof ApiError && e.status === 401) setMe(null);
        else setMe(null);
      },
    );
  }, []);
  if (me === undefined) return <Loading what="Starting" />;
  if (me === null)
    return (
      <Login
        onSignedIn={(m) => {
          setSession(m);
          setMe(m);
        }}
      />
    );
  const page = route.parts[0] ?? "overview";
  let body: JSX.Element;
  switch (page) {
    case "activity":
      body = <Activity me={me} />;
      break;
    case "history":
      body = <History me={me} route={route} />;
      break;
    case "browse":
      body = <Browse me={me} route={route} />;
      break;
    case "restore":
      body = <RestorePage me={me} route={route} />;
      break;
    case "integrity":
      body = <Integrity me={me} />;
      break;
    case "policies":
      body = <Policies me={me} />;
      break;
    case "audit":
      body = <AuditPage />;
      break;
    case "fleet":
      body = <FleetPage me={me} route={route} />;
      break;
    case "account":
      body = <AccountPage me={me} route={route} />;
      break;
    default:
      body = <Overview me={me} />;
  }
  return (
    <div class="layout">
      <nav class="side">
        <div class="brand">
          <Icon kind="logo" /> lifeboat
        </div>
        {NAV.map(([k, label]) => (
          <a
            key={k}
            href={href([k])}
            class={
              page === k || (k === "overview" && !NAV.some(([n]) => n === page) && page !== "audit")
                ? "active"
                : ""
            }
          >
            {label}
          </a>
        ))}
        {me.role === "admin" ? (
          <a href={href(["audit"])} class={page === "audit" ? "active" : ""}>
            Audit log
          </a>
        ) : null}
        <div class="me">
          <div>
            <strong data-testid="me">{me.user}</strong> <span class="me-role">({me.role})</span>
          </div>
          <button
            type="button"
            class="btn"
            onClick={async () => {
              await api("/api/logout", { method: "POST" }).catch(() => {});
              setSession(null);
              setMe(null);
            }}
          >
            Sign out
          </button>
        </div>
      </nav>
      <main class="content">{body}</main>
    </div>
  );
}

render(<App />, document.getElementById("app")!);
