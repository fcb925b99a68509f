// The package's command line (`npx cdk-warm-web <command>`), bundled into assets/cli/cdk-warm-web.js.
import { lambdaClient, manage, MANAGE_HELP } from './manage';

const HELP = `Usage: cdk-warm-web <command> [options]

Commands:
  manage    run a Django management command, a Flask CLI command or a function of the app inside the
            deployed function (cdk-warm-web manage --help)
`;

export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  const io = {
    out: (text: string) => void process.stdout.write(text),
    err: (text: string) => void process.stderr.write(text),
    lambda: lambdaClient,
  };
  if (command === 'manage') {
    return manage(rest, io);
  }
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    io.out(rest[0] === 'manage' ? MANAGE_HELP : HELP);
    return command === undefined ? 2 : 0;
  }
  io.err(`cdk-warm-web: unknown command ${JSON.stringify(command)}\n${HELP}`);
  return 2;
}

if (require.main === module) {
  // Set, not process.exit(): what is written to stdout still gets out.
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  }, (error: unknown) => {
    process.stderr.write(`cdk-warm-web: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 1;
  });
}
