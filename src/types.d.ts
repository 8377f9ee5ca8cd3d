// Text imports (`with { type: "text" }`) used to embed files in the binary.
declare module "*.sql" {
  const text: string;
  export default text;
}
