// Prints what a synthesized cdk-warm-web stack contains, for people: node summarize-template.js FILE
const fs = require('fs');
const path = require('path');

const file = process.argv[2];
const template = JSON.parse(fs.readFileSync(file, 'utf-8'));
const resources = Object.entries(template.Resources ?? {});
const ofType = (type) => resources.filter(([, r]) => r.Type === type);
const show = (value) => (typeof value === 'string' ? value : JSON.stringify(value));

console.log(`template: ${path.resolve(file)}`);
console.log(`resources: ${resources.length}`);
for (const [id, fn] of ofType('AWS::Lambda::Function')) {
  const p = fn.Properties;
  console.log(`function  ${id}: ${p.Runtime} ${p.Architectures?.join(',') ?? 'x86_64'}, ${p.MemorySize} MB, ${p.Timeout} s, handler ${p.Handler}`);
  const env = p.Environment?.Variables ?? {};
  console.log(`          app ${env.WARM_WEB_APP_KIND} ${env.WARM_WEB_APP}`);
}
for (const [id, v] of ofType('AWS::Lambda::Version')) console.log(`version   ${id} of ${show(v.Properties.FunctionName)}`);
for (const [id, a] of ofType('AWS::Lambda::Alias')) console.log(`alias     ${id}: '${a.Properties.Name}' -> ${show(a.Properties.FunctionVersion)}`);
for (const [id, u] of ofType('AWS::Lambda::Url')) console.log(`url       ${id}: auth ${u.Properties.AuthType}, qualifier ${u.Properties.Qualifier}, ${u.Properties.InvokeMode}`);
for (const [id] of ofType('AWS::ApiGatewayV2::Api')) console.log(`http api  ${id}`);
for (const [id, l] of ofType('AWS::Lambda::LayerVersion')) console.log(`layer     ${id}: ${l.Properties.Description}`);
for (const [id, r] of ofType('AWS::IAM::Role')) {
  const managed = r.Properties.ManagedPolicyArns?.length ?? 0;
  console.log(`role      ${id}: ${managed} managed policies`);
}
for (const [id, p] of ofType('AWS::IAM::Policy')) {
  const actions = p.Properties.PolicyDocument.Statement.flatMap((s) => [].concat(s.Action));
  console.log(`policy    ${id}: ${actions.join(', ')}`);
}
for (const [id, l] of ofType('AWS::Logs::LogGroup')) console.log(`log group ${id}: ${l.Properties.RetentionInDays} days`);
for (const [id, o] of Object.entries(template.Outputs ?? {})) console.log(`output    ${id}: ${o.Description ?? ''} = ${show(o.Value)}`);
