// The part of ssh2 (a dependency of node-ssh, used directly for its key parser) that src/ssh.ts uses; ssh2 ships no
// types of its own.
declare module 'ssh2' {
  /** A key as ssh2's parser returns it (lib/protocol/keyParser.js). */
  export interface ParsedKey {
    type: string;
    comment: string;
    sign(data: Buffer, algo?: string): Buffer | Error;
    verify(data: Buffer, signature: Buffer, algo?: string): boolean | Error;
    isPrivateKey(): boolean;
    getPrivatePEM(): string | null;
    getPublicPEM(): string | null;
    getPublicSSH(): Buffer;
  }
  const ssh2: {
    utils: { parseKey(data: string | Buffer, passphrase?: string | Buffer): ParsedKey | ParsedKey[] | Error };
  };
  export default ssh2;
}
