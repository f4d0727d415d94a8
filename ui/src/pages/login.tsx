import { useState } from "preact/hooks";
import { api, type Me } from "../api";
import { ErrorBox } from "../components/common";
import { Icon } from "../components/icons";

export function Login({ onSignedIn }: { onSignedIn: (m: Me) => void }) {
  const [user, setUser] = useState("admin");
  const [token, setToken] = useState("");
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState<unknown>(null);
  return (
    <div class="login">
      <form
        class="card"
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setErr(null);
          try {
            onSignedIn(await api<Me>("/api/login", { body: { user, token } }));
          } catch (x) {
            setErr(x);
          } finally {
            setBusy(false);
          }
        }}
      >
        <h1>
          <Icon kind="logo" /> lifeboat console
        </h1>
        <p class="muted">Sign in with your user name and the token `lifeboat ui` printed for you.</p>
        <label>
          User
          <input
            name="user"
            value={user}
            onInput={(e) => setUser(e.currentTarget.value)}
            autoComplete="username"
          />
        </label>
        <label>
          Token
          <input
            name="token"
            type="password"
            value={token}
            onInput={(e) => setToken(e.currentTarget.value)}
            autoComplete="current-password"
          />
        </label>
        <button type="submit" class="btn btn-primary" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        <ErrorBox error={err} />
      </form>
    </div>
  );
}
