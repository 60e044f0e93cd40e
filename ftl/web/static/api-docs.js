// The interactive API docs at /api/docs: Swagger UI (vendored, scripts/vendor_web.sh) on the
// document the api generates. A classic script: the bundle defines window.SwaggerUIBundle.
/* global SwaggerUIBundle */
window.ui = SwaggerUIBundle({
  url: "/api/openapi.json",
  dom_id: "#docs",
  deepLinking: true,
  docExpansion: "list",
  defaultModelsExpandDepth: 0,
  persistAuthorization: false,
});
