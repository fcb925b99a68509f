/**
 * A CloudFront Function (runtime cloudfront-js-2.0) for viewer requests: copies the viewer's `Host` into
 * `X-Forwarded-Host`. The origin request policy drops `Host` (a Function URL must receive its own), so this
 * is how the app learns the name the browser used. CloudFront lets a function read `Host` (read-only in
 * viewer requests) and add `X-Forwarded-Host` (not on its disallowed list, unlike `X-Forwarded-Proto`, which
 * the Function URL sets to `https` itself). A viewer's own `X-Forwarded-Host` is overwritten.
 */
export const FORWARDED_HOST_FUNCTION = `function handler(event) {
  var request = event.request;
  request.headers['x-forwarded-host'] = { value: request.headers.host.value };
  return request;
}
`;
