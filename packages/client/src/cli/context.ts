/** What a subcommand gets from the CLI entry: output channels and the Ctrl-C signal. */
export interface CommandContext {
  /** user-facing output (text, JSON) */
  stdout: (text: string) => void
  /** logs and progress; never mixed into stdout so --json output stays one document */
  stderr: (text: string) => void
  /** aborted on SIGINT */
  signal: AbortSignal
}
