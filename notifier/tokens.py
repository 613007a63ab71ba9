"""Token symbols usable in rules: a small built-in table, extended by ``[tokens.X]`` config."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

__all__ = [
    "BUILTIN_TOKENS",
    "SOLANA_MINTS",
    "Token",
    "TokenTable",
    "address_key",
    "is_base58_address",
    "is_evm_address",
]

_EVM_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_BASE58_ADDRESS = re.compile(r"[1-9A-HJ-NP-Za-km-z]{32,44}")  # no 0, O, I, l


def is_evm_address(text: str) -> bool:
    """``0x`` and 40 hex digits: an Ethereum (EVM) account or token address."""
    return _EVM_ADDRESS.fullmatch(text) is not None


def is_base58_address(text: str) -> bool:
    """Base58 of 32 to 44 characters: a Fogo/Solana account or mint address."""
    return _BASE58_ADDRESS.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class Token:
    symbol: str
    address: str
    decimals: int


# Fogo (SVM) mints as Argyros documents them, and the main Ethereum assets Fusion orders use.
BUILTIN_TOKENS: tuple[Token, ...] = (
    Token("SOL", "So11111111111111111111111111111111111111112", 9),
    Token("USDC", "uSd2czE61Evaf76RNbq4KPpXnkiL3irdzgLFUMe3NoG", 6),
    Token("WETH", "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2", 18),
    Token("USDC.e", "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48", 6),
    Token("USDT", "0xdAC17F958D2ee523a2206206994597C13D831ec7", 6),
    Token("DAI", "0x6B175474E89094C44Da98b954EedeAC495271d0F", 18),
)


# Solana mints Fusion orders on chain 501 use, known by address only: their symbols would
# shadow the Fogo ones quote rules name (``USDC`` is a Fogo mint there).
SOLANA_MINTS: tuple[Token, ...] = (
    Token("USDC", "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v", 6),
    Token("USDT", "Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BenwNYB", 6),
)


def address_key(address: str) -> str:
    """How an address is compared: ``0x`` (EVM) without regard to case (checksum casing),
    anything else (base58) exactly."""
    return address.lower() if address.startswith(("0x", "0X")) else address


class TokenTable:
    """Resolves symbols to tokens and addresses back to symbols."""

    def __init__(
        self, tokens: Iterable[Token] = BUILTIN_TOKENS, by_address: Iterable[Token] = SOLANA_MINTS
    ) -> None:
        self._by_symbol: dict[str, Token] = {}
        self._by_address: dict[str, Token] = {token.address: token for token in by_address}
        for token in tokens:
            self.add(token)

    @classmethod
    def with_overrides(cls, overrides: Mapping[str, tuple[str, int]]) -> TokenTable:
        table = cls()
        for symbol, (address, decimals) in overrides.items():
            table.add(Token(symbol, address, decimals))
        return table

    def add(self, token: Token) -> None:
        self._by_symbol[token.symbol.upper()] = token
        self._by_address[address_key(token.address)] = token

    def resolve(self, symbol_or_address: str) -> Token | None:
        """A known token by symbol (case-insensitive) or by address."""
        return self._by_symbol.get(symbol_or_address.upper()) or self._by_address.get(
            address_key(symbol_or_address)
        )

    def by_address(self, address: str) -> Token | None:
        return self._by_address.get(address_key(address))

    def __iter__(self) -> Iterator[Token]:
        return iter(self._by_symbol.values())
