// node:test reporter that prints one closing line "N passed, M failed" (tests/count.py reads it),
// counting test cases (not describe() suites). Used next to the TAP reporter.
export default async function* summary(source) {
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const { details } = event.data;
    if (details?.type === 'suite') {
      // A suite that failed without a failing test (e.g. a hook error) still counts once.
      if (event.type === 'test:fail' && details?.error?.failureType !== 'subtestsFailed') failed++;
      continue;
    }
    if (event.data.skip || event.data.todo) { skipped++; continue; }
    if (event.type === 'test:pass') passed++;
    else failed++;
  }
  yield `${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`;
}
