import { useEffect, useState } from "preact/hooks";

/** Routes live in the URL's fragment (#/browse/main/ID?path=/x): the server serves one page. */
export interface Route {
  parts: string[];
  params: URLSearchParams;
}

function current(): Route {
  const h = location.hash.replace(/^#\/?/, "");
  const [p = "", qs = ""] = h.split("?");
  return { parts: p.split("/").filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(qs) };
}

export function useRoute(): Route {
  const [r, setR] = useState(current);
  useEffect(() => {
    const on = () => setR(current());
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  return r;
}

export function href(parts: string[], params: Record<string, string | undefined> = {}): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") p.set(k, v);
  const qs = p.toString();
  return `#/${parts.map(encodeURIComponent).join("/")}${qs ? `?${qs}` : ""}`;
}

export function go(parts: string[], params: Record<string, string | undefined> = {}): void {
  location.hash = href(parts, params);
}
