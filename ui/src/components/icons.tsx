/** Small inline icons (no icon font, no emoji font needed on the machine showing the page). */
export function Icon({ kind }: { kind: "dir" | "file" | "symlink" | "logo" }) {
  if (kind === "logo")
    return (
      <svg class="icon logo" viewBox="0 0 24 24" width="20" height="20" aria-hidden="true">
        <path
          d="M12 2v14M12 3l7 11h-7M5 17h14l-2 4H7z"
          fill="none"
          stroke="currentColor"
          stroke-width="1.8"
        />
      </svg>
    );
  if (kind === "dir")
    return (
      <svg class="icon" viewBox="0 0 16 16" width="16" height="16" aria-hidden="true">
        <path d="M1 3.5h5l1.5 1.5H15v8.5H1z" fill="#f2c14e" stroke="#c9962a" />
      </svg>
    );
  if (kind === "symlink")
    return (
      <svg class="icon" viewBox="0 0 16 16" width="16" height="16" aria-hidden="true">
        <path d="M3 9a3 3 0 0 1 3-3h6M9 3l3 3-3 3" fill="none" stroke="#5c6370" stroke-width="1.5" />
      </svg>
    );
  return (
    <svg class="icon" viewBox="0 0 16 16" width="16" height="16" aria-hidden="true">
      <path d="M3 1.5h6.5L13 5v9.5H3z" fill="#fff" stroke="#8a93a6" />
      <path d="M9.5 1.5V5H13" fill="none" stroke="#8a93a6" />
    </svg>
  );
}
