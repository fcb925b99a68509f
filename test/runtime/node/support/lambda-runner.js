// Loads a built shim bundle the way Lambda's Node runtime loads /opt/warm-web/index.handler (require
// is INIT; the handler is called without waiting for anything else) and invokes it with each event.
// Usage: node lambda-runner.js <bundle> '<JSON array of events>'   (WARM_WEB_* env set by the caller)
// Prints the shim's own stdout (the EMF line) plus one "RESULT <json>" or "ERROR <message>" per event.
'use strict';

const [bundle, eventsJson] = process.argv.slice(2);
const { handler } = require(bundle);

async function main() {
  const events = JSON.parse(eventsJson);
  for (let i = 0; i < events.length; i++) {
    const context = {
      awsRequestId: `invoke-${i}`,
      functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
      // Each invoke's time: WARM_WEB_TEST_REMAINING_MS (tests of what an invoke's time bounds), else 10 s.
      getRemainingTimeInMillis: () => Number(process.env.WARM_WEB_TEST_REMAINING_MS || 10000),
    };
    try {
      const result = await handler(events[i], context);
      process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
    } catch (error) {
      process.stdout.write(`ERROR ${error instanceof Error ? error.message : String(error)}\n`);
    }
  }
}

main();
